/*
 * Hub groups (src/hub_group.c) on fake connections: one frame published
 * to the group reaches the hubs of two managers, stored once; a member
 * whose loop is behind loses frames without holding the other back, and
 * for H.264 its viewers resume at the next IDR, after the configuration in
 * force, never getting a frame whose reference they lack.
 *
 * "Another thread's loop" is made deterministic: a helper thread runs
 * manager 2's loop for a moment (sl_mgr_poll makes it the loop thread), so
 * the test thread's group publishes go through manager 2's inbound queue
 * (8 items) until the helper drains it again. Run under TSan by
 * scripts/ci-tsan.sh (the name holds "thread").
 *
 * The access-unit builder and reader are tests/h264_fake.h's.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_fake.h"

#include "h264_fake.h"

/* ---- manager 2 on a thread of its own ------------------------------- */

static void *poll_some(void *arg) {
  for (int i = 0; i < 4; i++) sl_mgr_poll(arg, 0);
  return NULL;
}

/* Run a few iterations of `m`'s loop on a new thread (its inbound queue
 * is drained there, and it stays that thread's manager). */
static void poll_elsewhere(sl_mgr *m) {
  pthread_t t;
  CHECK_EQ(pthread_create(&t, NULL, poll_some, m), 0);
  CHECK_EQ(pthread_join(t, NULL), 0);
}

static sl_hub *hub_kind(sl_mgr *m, int kind, const char *name) {
  int err = 0;
  sl_hub_opts o = {.kind = kind};
  sl_hub *h = sl_hub_new(m, name, &o, &err);
  CHECK_MSG(h != NULL, "sl_hub_new: %s", sl_strerror(err));
  return h;
}

static uint64_t gseq;

/* Publish the next access unit to the group. */
static void gpub(sl_hub_group *g, sl_mgr *m1, int key, int ps) {
  sl_buf *b = mk_au(++gseq, key, ps, SLICE);
  CHECK_EQ(sl_hub_group_publish(g, b, 0, 0), 0);
  sl_buf_unref(b);
  step(m1);
}

static void free_all(sl_hub_group *g, sl_mgr **m, sl_hub **h, struct fake **f, int n,
                     int group_first) {
  if (group_first) sl_hub_group_free(g);
  for (int i = 0; i < n; i++) {
    if (f[i]->c) sl_conn_close(f[i]->c, SL_CLOSE_NOW);
    step(m[i]);
    sl_hub_free(h[i]);
    step(m[i]);
    sl_mgr_stats st;
    sl_mgr_stats_get(m[i], &st);
    CHECK_EQ(st.held, 0);
    CHECK_EQ(st.queued, 0);
    sl_mgr_free(m[i]);
    free(f[i]->rec);
    f[i]->rec = NULL;
  }
  if (!group_first) sl_hub_group_free(g);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.nbufs, 0);
  CHECK_EQ(ms.total, 0);
}

TEST(hub_group_thread_h264_loss_resyncs_at_idr_with_config) {
  sl_mgr *m[2] = {mgr_fake(), mgr_fake()};
  sl_hub *h[2] = {hub_kind(m[0], SL_KIND_H264, "cam"), hub_kind(m[1], SL_KIND_H264, "cam")};
  struct fake v1, v2;
  struct fake *f[2] = {&v1, &v2};
  CHECK_EQ(attach(h[0], &v1, OPEN, SL_TRANSPORT_RAW, NULL), 0);
  CHECK_EQ(attach(h[1], &v2, OPEN, SL_TRANSPORT_RAW, NULL), 0);
  int err = 0;
  sl_hub_group *g = sl_hub_group_new(&err);
  CHECK(g != NULL);
  CHECK_EQ(sl_hub_group_add(g, h[0]), 0);
  CHECK_EQ(sl_hub_group_add(g, h[1]), 0);
  CHECK_EQ(sl_hub_group_add(g, h[1]), SL_EEXIST);
  poll_elsewhere(m[1]);
  gseq = 0;
  /* 1-4: both loops keep up. */
  gpub(g, m[0], 1, PS_A);
  for (int i = 0; i < 3; i++) gpub(g, m[0], 0, PS_NONE);
  poll_elsewhere(m[1]);
  /* 5-16: loop 2 stalls; its queue takes 5-12 and loses 13, so 14-16
   * are withheld (they reference 13). */
  for (int i = 0; i < 12; i++) gpub(g, m[0], 0, PS_NONE);
  CHECK_EQ(sl_hub_group_ready(g), 0);
  /* 17-20 are withheld; 21, an IDR without in-band parameter sets, needs
   * two free slots and is lost as well. */
  for (int i = 0; i < 4; i++) gpub(g, m[0], 0, PS_NONE);
  gpub(g, m[0], 1, PS_NONE);
  poll_elsewhere(m[1]);
  CHECK_EQ(sl_hub_group_ready(g), 1);
  gpub(g, m[0], 0, PS_NONE);           /* 22: withheld */
  gpub(g, m[0], 1, PS_NONE);           /* 23: resync, after PS_A */
  gpub(g, m[0], 0, PS_NONE);           /* 24 */
  poll_elsewhere(m[1]);
  /* A new configuration arrives in-band with an IDR that loop 2 loses:
   * 25-32 fill its queue, 33 (IDR, PS_B) is lost, 34 withheld, and 35 (an
   * IDR without parameter sets) must reach it behind PS_B. */
  for (int i = 0; i < 8; i++) gpub(g, m[0], 0, PS_NONE);
  gpub(g, m[0], 1, PS_B);
  gpub(g, m[0], 0, PS_NONE);
  poll_elsewhere(m[1]);
  gpub(g, m[0], 1, PS_NONE);
  gpub(g, m[0], 0, PS_NONE);
  poll_elsewhere(m[1]);

  struct aus a1, a2;
  parse_annexb(v1.rec, v1.len, &a1);
  parse_annexb(v2.rec, v2.len, &a2);
  CHECK_EQ(check_decodable(&a1, "loop 1"), 0);
  CHECK_EQ(a1.n, 36);
  CHECK_EQ(check_decodable(&a2, "loop 2"), 2);
  /* 1-12, 23-32, 35-36. */
  CHECK_EQ(a2.n, 24);
  CHECK_EQ(a2.v[11].seq, 12);
  CHECK_EQ(a2.v[12].seq, 23);
  CHECK_EQ(a2.v[12].ps, PS_A);
  CHECK_EQ(a2.v[22].seq, 35);
  CHECK_EQ(a2.v[22].key, 1);
  CHECK_EQ(a2.v[22].ps, PS_B);
  aus_fini(&a1);
  aus_fini(&a2);

  sl_hub_stats s1 = hub_stats(h[0]), s2 = hub_stats(h[1]);
  CHECK_EQ(s1.group_lost, 0);
  CHECK_EQ(s1.group_skipped, 0);
  CHECK_EQ(s2.group_lost, 3);              /* 13, 21, 33 */
  CHECK_EQ(s2.group_skipped, 7 + 1 + 1);   /* 14-20, 22, 34 */
  CHECK_EQ(s2.group_resyncs, 1 + 2);       /* joining at 1, then 23, 35 */
  CHECK_EQ(s2.codec_changes, 2);
  /* Numbers are the group's: loop 2's last frame is 36 there too, after
   * its gaps, not its 24th. */
  CHECK_EQ(s1.seq, 36);
  CHECK_EQ(s2.seq, 36);
  sl_hub_group_stats gs;
  sl_hub_group_stats_get(g, &gs);
  CHECK_EQ(gs.members, 2);
  CHECK_EQ(gs.frames_in, 36);
  CHECK_EQ(gs.lost, 3);
  CHECK_EQ(gs.skipped, 9);
  free_all(g, m, h, f, 2, 0);
}

TEST(hub_group_thread_frame_stored_once_stalled_loop_holds_back_nothing) {
  enum { BIG = 100000 };
  sl_mgr *m[2] = {mgr_fake(), mgr_fake()};
  sl_hub *h[2] = {hub_kind(m[0], SL_KIND_MJPEG, "cam"), hub_kind(m[1], SL_KIND_MJPEG, "cam")};
  struct fake v1, v2;
  struct fake *f[2] = {&v1, &v2};
  CHECK_EQ(attach(h[0], &v1, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  CHECK_EQ(attach(h[1], &v2, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  sl_hub_group *g = sl_hub_group_new(NULL);
  CHECK(g != NULL);
  CHECK_EQ(sl_hub_group_add(g, h[0]), 0);
  CHECK_EQ(sl_hub_group_add(g, h[1]), 0);
  sl_hub *h264 = hub_kind(m[0], SL_KIND_H264, "other");
  (void)h264;
  poll_elsewhere(m[1]);

  sl_buf *b = sl_buf_new(BIG);
  CHECK(b != NULL);
  memset(sl_buf_data(b), 0x5a, BIG);
  CHECK_EQ(sl_hub_group_publish(g, b, 0, SL_FRAME_KEY), 0);
  sl_buf_unref(b);
  step(m[0]);
  poll_elsewhere(m[1]);
  /* Stored once: one allocation of the bytes and two small aliases. */
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.bufs, sizeof(struct sl_buf) + BIG + 2 * sizeof(struct sl_buf));
  /* Each manager counts the frame its viewers hold, once. */
  for (int i = 0; i < 2; i++) {
    sl_hub_stats st = hub_stats(h[i]);
    CHECK_EQ(st.frames_held, 1);
    CHECK_EQ(st.held, 2 * sizeof(struct sl_buf) + BIG);
    sl_mgr_stats ms2;
    sl_mgr_stats_get(m[i], &ms2);
    CHECK(ms2.held >= BIG);
  }
  CHECK(v1.len > BIG && v2.len > BIG);

  /* Loop 2's viewer stalls; loop 1's keeps getting every frame, and each
   * hub lets go of the frames its viewers are done with (the other hub's
   * hold on the same bytes does not keep them). */
  set_window(m[1], &v2, 0);
  size_t before2 = v2.len;
  for (int i = 0; i < 40; i++) {
    sl_buf *x = sl_buf_new(1000);
    CHECK(x != NULL);
    memset(sl_buf_data(x), i, 1000);
    CHECK_EQ(sl_hub_group_publish(g, x, 0, 0), 0);
    sl_buf_unref(x);
    step(m[0]);
    if (i % 4 == 3) poll_elsewhere(m[1]);
    CHECK(hub_stats(h[0]).frames_held <= 2);
    CHECK(hub_stats(h[1]).frames_held <= 3);
  }
  CHECK_EQ(hub_stats(h[0]).frames_in, 41);
  CHECK_EQ(hub_stats(h[1]).frames_in, 41);
  CHECK_EQ(hub_stats(h[0]).group_lost, 0);
  CHECK_EQ(v2.len, before2);
  sl_sub_stats ss;
  sub_stats(h[0], &v1, &ss);
  CHECK_EQ(ss.frames_sent, 41);

  /* Texts reach every member. */
  CHECK_EQ(sl_hub_group_publish_text(g, "{\"type\":\"x\"}", 12), 0);
  CHECK_EQ(sl_hub_group_publish_text(g, "\xff", 1), SL_EINVAL);
  poll_elsewhere(m[1]);
  CHECK_EQ(hub_stats(h[0]).texts_in, 1);
  CHECK_EQ(hub_stats(h[1]).texts_in, 1);
  /* Members share one kind. */
  CHECK_EQ(sl_hub_group_add(g, h264), SL_EINVAL);
  sl_hub_free(h264);
  /* The group goes first here: its members stay, and are freed later. */
  free_all(g, m, h, f, 2, 1);
}

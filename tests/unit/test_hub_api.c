/*
 * Hub API contracts that need no socket: sl_hub_publish reports a frame it
 * could not store (SL_ENOMEM on the loop thread) and keeps nothing.
 */
#include <stdlib.h>

#include "sluice.h"
#include "test.h"

/* An allocator that fails while `failing` is set. Installed before this
 * test process (a forked child of the runner) makes its first sl_ call. */
static int failing;
static void *maybe_malloc(size_t n) { return failing ? NULL : malloc(n); }

TEST(hub_publish_out_of_memory_is_enomem) {
  CHECK_EQ(sl_set_allocator(maybe_malloc, NULL, NULL), 0);
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_hub *h = sl_hub_new(m, "cam", NULL, &err);
  CHECK(h != NULL);
  sl_buf *b = sl_buf_from("frame", 5);
  CHECK(b != NULL);
  failing = 1;
  int rc = sl_hub_publish(h, b, 0, 0);
  failing = 0;
  CHECK_EQ(rc, SL_ENOMEM);
  CHECK_EQ(sl_buf_refs(b), 1); /* no reference kept */
  sl_hub_stats st;
  sl_hub_stats_get(h, &st);
  CHECK_EQ(st.frames_in, 0);
  CHECK_EQ(st.lost, 1);
  CHECK_EQ(st.frames_held, 0);
  CHECK_EQ(sl_hub_publish(h, b, 0, 0), 0);
  sl_hub_stats_get(h, &st);
  CHECK_EQ(st.frames_in, 1);
  CHECK_EQ(st.seq, 1);
  CHECK_EQ(sl_hub_publish(NULL, b, 0, 0), SL_EINVAL);
  sl_buf_unref(b);
  sl_mgr_free(m);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.total, 0);
}

/* The numbers of sluice-stream, as JSON (/api/stats, /api/events) and as
 * Prometheus text (/metrics): library memory, each stream, each viewer.
 *
 * With several loops (--threads N) a loop's hubs and connections may be
 * read only on its own thread, so a view is made in two steps: every loop
 * fills its part of a snapshot on its thread (the asking loop at once, the
 * others through sl_mgr_call), and the last one to finish hands the
 * snapshot back to the asking loop, which renders it and replies. No loop
 * ever waits for another. The totals are exact: each loop's part is taken
 * after the request arrived, so a viewer that was attached before it is
 * counted. How the loops' numbers are merged:
 *   summed   viewers, connections, joins, leaves, drops, evictions,
 *            refusals, texts, fMP4 fragments (each loop builds its own),
 *            queued bytes;
 *   largest  frames_in, seq, fps_in, bitrate (every loop gets every frame
 *            of the group), and the frames a stream holds (held,
 *            frames_held, the GOP, all from the loop holding the most
 *            bytes, so they agree): the loops share the frames' bytes, so
 *            that loop tells; memory.held counts them that way too,
 *            beside each loop's own buffers.
 * With one loop the snapshot is taken and rendered inside the request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

const char *ss_transport_name(int t) { return sl_transport_name(t); }

const char *ss_policy_name(int p) { return sl_policy_name(p); }

size_t ss_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, rss = 0;
  if (f == NULL) return 0;
  if (fscanf(f, "%lu %lu", &size, &rss) != 2) rss = 0;
  fclose(f);
  return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

ss_loop *ss_loop_of(ss_app *a, sl_mgr *m) {
  for (int i = 1; i < a->nloops; i++)
    if (a->loops[i].mgr == m) return &a->loops[i];
  return &a->loops[0];
}

sl_hub *ss_loop_hub(ss_loop *lp, int i) {
  return lp->idx == 0 ? lp->app->streams[i].hub : lp->hubs[i];
}

/* The stream of hub h, by name: every loop's hub of a stream has its name. */
static ss_stream *stream_of(ss_loop *lp, sl_hub *h) {
  ss_app *a = lp->app;
  for (int i = 0; i < a->nstreams; i++)
    if (ss_loop_hub(lp, i) == h) return &a->streams[i];
  return NULL;
}

/* Log joins and leaves, count viewers, and remember the last leaves for
 * the dashboard. `arg` is the hub's loop. */
void ss_on_hub_event(sl_hub *h, const sl_hub_event *e, void *arg) {
  ss_loop *lp = arg;
  ss_app *a = lp->app;
  ss_stream *st = stream_of(lp, h);
  const char *name = sl_hub_name(h);
  if (e->type == SL_HUB_JOIN) {
    atomic_fetch_add(&lp->viewers, 1);
    if (st) atomic_fetch_add(&st->viewers, 1);
    sl_log(SL_LOG_INFO, "stream %s: viewer %llu %s joined (%s)", name,
           (unsigned long long)e->sub_id, e->peer, ss_transport_name(e->transport));
  } else if (e->type == SL_HUB_LEAVE) {
    sl_log(e->evict ? SL_LOG_WARN : SL_LOG_INFO,
           "stream %s: viewer %llu %s left: %s%s%s", name, (unsigned long long)e->sub_id,
           e->peer, sl_close_reason_name(e->reason), e->evict ? ", evicted: " : "",
           e->evict ? sl_evict_reason_name(e->evict) : "");
    atomic_fetch_sub(&lp->viewers, 1);
    if (st) {
      atomic_fetch_sub(&st->viewers, 1);
      pthread_mutex_lock(&a->recent_lock);
      struct ss_leave *l = &st->recent[st->nrecent++ % SS_RECENT];
      l->id = e->sub_id;
      l->at_ms = sl_mgr_now(lp->mgr) - a->started_ms;
      snprintf(l->peer, sizeof(l->peer), "%s", e->peer ? e->peer : "");
      l->transport = e->transport;
      l->reason = e->reason;
      l->evict = e->evict;
      pthread_mutex_unlock(&a->recent_lock);
    }
  } else if (e->type == SL_HUB_NOT_READY) {
    sl_log(SL_LOG_INFO, "stream %s: a lossless viewer is full; producer waits", name);
  }
}

/* ---- the snapshot ------------------------------------------------------ */

struct view_sub {
  sl_sub_stats s;
  int dscp, priority;
};

struct snap_loop {
  sl_mgr_stats ms;
  sl_hub_stats hs[SS_MAX_STREAMS];
  struct view_sub *subs[SS_MAX_STREAMS];
  size_t nsubs[SS_MAX_STREAMS];
  int missing; /* its loop could not be asked (its queue was full) */
};

struct ss_gather {
  ss_app *a;
  ss_loop *origin;
  uint64_t conn_id;       /* 0: the SSE clients of `origin` */
  int view, nstreams, nloops;
  atomic_int pending;
  struct ss_gather *prev, *next; /* a->gathers, under a->gather_lock */
  /* Merged at the end, on the origin's thread. */
  sl_mgr_stats ms;
  sl_hub_stats hs[SS_MAX_STREAMS];
  size_t held;            /* memory.held with shared frames counted once */
  struct snap_loop loop[]; /* nloops */
};

/* Loop lp's part, on lp's thread. A viewer list that cannot be stored is
 * left empty (the counts stay exact). */
static void fill(struct ss_gather *g, ss_loop *lp) {
  struct snap_loop *sp = &g->loop[lp->idx];
  sl_mgr_stats_get(lp->mgr, &sp->ms);
  for (int i = 0; i < g->nstreams; i++) {
    sl_hub *h = ss_loop_hub(lp, i);
    sl_hub_stats_get(h, &sp->hs[i]);
    size_t n = sl_hub_subs(h, NULL, 0);
    if (n == 0) continue;
    sl_sub_stats *tmp = malloc(n * sizeof(*tmp));
    sp->subs[i] = tmp ? malloc(n * sizeof(*sp->subs[i])) : NULL;
    if (sp->subs[i] == NULL) {
      free(tmp);
      continue;
    }
    n = sl_hub_subs(h, tmp, n);
    for (size_t k = 0; k < n; k++) {
      sp->subs[i][k].s = tmp[k];
      ss_qos_read(lp, tmp[k].id, &sp->subs[i][k].dscp, &sp->subs[i][k].priority);
    }
    sp->nsubs[i] = n;
    free(tmp);
  }
}

static void merge(struct ss_gather *g) {
  memset(&g->ms, 0, sizeof(g->ms));
  size_t frames_of_loops = 0;
  for (int l = 0; l < g->nloops; l++) {
    const sl_mgr_stats *m = &g->loop[l].ms;
    g->ms.held += m->held;
    g->ms.peak += m->peak;
    g->ms.budget += m->budget;
    g->ms.out_owned += m->out_owned;
    g->ms.out_ref += m->out_ref;
    g->ms.in += m->in;
    g->ms.queued += m->queued;
    g->ms.tls += m->tls;
    g->ms.conns += m->conns;
    g->ms.accepted += m->accepted;
    g->ms.rejected += m->rejected;
    g->ms.refused_sends += m->refused_sends;
    for (int r = 0; r <= SL_CLOSE_SHUTDOWN; r++) g->ms.closed_by[r] += m->closed_by[r];
  }
  size_t frames_once = 0;
  for (int i = 0; i < g->nstreams; i++) {
    sl_hub_stats *o = &g->hs[i];
    *o = g->loop[0].hs[i];
    frames_of_loops += o->held;
    for (int l = 1; l < g->nloops; l++) {
      const sl_hub_stats *h = &g->loop[l].hs[i];
      frames_of_loops += h->held;
#define SUM(f) o->f += h->f
#define MAX(f) if (h->f > o->f) o->f = h->f
      MAX(frames_in); MAX(bytes_in); MAX(seq); MAX(fps_in); MAX(bitrate);
      MAX(largest_frame);
      if (h->held > o->held) {
        /* The frames held, all from one loop, so that they agree (the GOP
         * is that loop's frames, the latest its last one). */
        o->held = h->held;
        o->frames_held = h->frames_held;
        o->gop_frames = h->gop_frames;
        o->gop_bytes = h->gop_bytes;
      }
      MAX(codec_changes); MAX(no_config); MAX(gop_cuts);
      SUM(subs); SUM(joins); SUM(leaves); SUM(refused); SUM(lost); SUM(resyncs);
      SUM(mp4_fragments); SUM(mp4_bytes); SUM(texts_sent); SUM(text_drops);
      SUM(group_lost); SUM(group_skipped); SUM(group_resyncs); SUM(group_texts_lost);
      MAX(texts_in);
      for (int r = 0; r <= SL_EVICT_HUB; r++) SUM(evictions[r]);
      for (int r = 0; r < SL_DROP_NREASONS; r++) SUM(drops[r]);
      o->ready = o->ready && h->ready;
#undef SUM
#undef MAX
    }
    frames_once += o->held;
  }
  g->held = g->ms.held >= frames_of_loops ? g->ms.held - frames_of_loops + frames_once
                                           : g->ms.held;
  g->ms.held = g->held;
  if (g->nloops > 1) g->ms.budget = g->loop[0].ms.budget; /* each loop's */
}

static void drops_json(ss_sbuf *b, const uint64_t *d) {
  ss_sbuf_printf(b, "{");
  for (int r = 0; r < SL_DROP_NREASONS; r++)
    ss_sbuf_printf(b, "%s\"%s\":%llu", r ? "," : "", sl_drop_reason_name(r),
                   (unsigned long long)d[r]);
  ss_sbuf_printf(b, "}");
}

/* The stream's kind and, for H.264, its codec and GOP; in both views. */
static void kind_json(ss_sbuf *b, const sl_hub_stats *hs) {
  ss_sbuf_printf(b, ",\"kind\":\"%s\",\"bitrate\":%.0f,\"resyncs\":%llu",
                 sl_kind_name(hs->kind), hs->bitrate, (unsigned long long)hs->resyncs);
  if (hs->kind != SL_KIND_H264) return;
  if (hs->codec[0]) {
    ss_sbuf_printf(b, ",\"codec\":");
    ss_sbuf_json_str(b, hs->codec);
  } else {
    ss_sbuf_printf(b, ",\"codec\":null");
  }
  ss_sbuf_printf(b,
                 ",\"gop_frames\":%zu,\"gop_bytes\":%zu,\"gop_cuts\":%llu,"
                 "\"codec_changes\":%llu,\"no_config\":%llu",
                 hs->gop_frames, hs->gop_bytes, (unsigned long long)hs->gop_cuts,
                 (unsigned long long)hs->codec_changes, (unsigned long long)hs->no_config);
  /* Frames published next to fMP4 fragments built: one fragment per frame
   * that any fMP4 viewer took, whatever the number of fMP4 viewers, which
   * is what a fan-out benchmark checks (one per frame and loop with
   * several loops: each builds its own). */
  ss_sbuf_printf(b, ",\"frames_in\":%llu,\"mp4_fragments\":%llu,\"mp4_bytes\":%llu",
                 (unsigned long long)hs->frames_in, (unsigned long long)hs->mp4_fragments,
                 (unsigned long long)hs->mp4_bytes);
}

static void streams_json(ss_app *a, const struct ss_gather *g, ss_sbuf *b) {
  ss_sbuf_printf(b, "{\"streams\":[");
  for (int i = 0; i < g->nstreams; i++) {
    ss_stream *st = &a->streams[i];
    const sl_hub_stats *hs = &g->hs[i];
    ss_sbuf_printf(b, "%s{\"name\":", i ? "," : "");
    ss_sbuf_json_str(b, st->name);
    ss_sbuf_printf(b, ",\"base\":");
    ss_sbuf_json_str(b, st->base);
    if (hs->kind == SL_KIND_H264)
      ss_sbuf_printf(b, ",\"h264\":\"%sstream.h264\",\"ws\":\"%sws\"", st->base, st->base);
    else
      ss_sbuf_printf(b, ",\"mjpeg\":\"%sstream.mjpg\",\"ws\":\"%sws\",\"snapshot\":\"%ssnapshot.jpg\"",
                     st->base, st->base, st->base);
    kind_json(b, hs);
    /* The picture size: the SPS's for H.264, the generated one otherwise. */
    int w = hs->width ? hs->width : a->src.width, hh = hs->height ? hs->height : a->src.height;
    ss_sbuf_printf(b, ",\"seq\":%llu,\"width\":%d,\"height\":%d,\"fps\":%.1f,\"viewers\":%zu,\"source\":",
                   (unsigned long long)hs->seq, w, hh, hs->fps_in, hs->subs);
    ss_sbuf_json_str(b, st->src ? ss_source_describe(st->src) : st->spec);
    ss_sbuf_printf(b, "}");
  }
  ss_sbuf_printf(b, "]}");
}

static void viewer_json(ss_sbuf *b, const struct view_sub *vs, uint64_t now, int loop, int first) {
  const sl_sub_stats *v = &vs->s;
  ss_sbuf_printf(b, "%s{\"id\":%llu,\"peer\":", first ? "" : ",", (unsigned long long)v->id);
  ss_sbuf_json_str(b, v->peer);
  ss_sbuf_printf(b,
                 ",\"transport\":\"%s\",\"policy\":\"%s\",\"fps_cap\":%.1f,\"queued\":%zu,"
                 "\"pending\":%zu,\"lag_ms\":%llu,\"lag_frames\":%llu,\"fps\":%.1f,"
                 "\"frames_sent\":%llu,\"bytes_sent\":%llu,\"send_max\":%zu,"
                 "\"resyncs\":%llu,\"drops\":",
                 ss_transport_name(v->transport), ss_policy_name(v->policy), v->fps_cap,
                 v->queued, v->pending, (unsigned long long)v->lag_ms,
                 (unsigned long long)v->lag_frames, v->fps,
                 (unsigned long long)v->frames_sent, (unsigned long long)v->bytes_sent,
                 v->send_max, (unsigned long long)v->resyncs);
  drops_json(b, v->drops);
  ss_sbuf_printf(b, ",\"state\":\"%s\",\"age_ms\":%llu,\"stalled_ms\":%llu,"
                 "\"dscp\":%d,\"priority\":%d,\"loop\":%d}",
                 v->stalled ? "stalled" : "active",
                 (unsigned long long)(now - v->joined_ms),
                 (unsigned long long)(v->queued ? now - v->last_progress_ms : 0), vs->dscp,
                 vs->priority, loop);
}

static void stats_json(ss_app *a, const struct ss_gather *g, ss_sbuf *b) {
  const sl_mgr_stats *ms = &g->ms;
  sl_mem_stats mem;
  sl_mem_stats_get(&mem);
  uint64_t now = sl_mgr_now(g->origin->mgr);
  ss_sbuf_printf(b,
                 "{\"version\":\"%s\",\"uptime_ms\":%llu,\"rss_bytes\":%zu,"
                 "\"memory\":{\"held\":%zu,\"peak\":%zu,\"budget\":%zu,\"lib_total\":%zu,"
                 "\"lib_meta\":%zu,\"lib_bufs\":%zu,\"lib_out\":%zu,\"lib_in\":%zu,"
                 "\"queued\":%zu},\"connections\":%zu,\"threads\":%d,\"streams\":[",
                 sl_version(), (unsigned long long)(now - a->started_ms), ss_rss_bytes(),
                 ms->held, ms->peak, ms->budget, mem.total, mem.meta, mem.bufs, mem.out, mem.in,
                 ms->queued, ms->conns, g->nloops);
  for (int i = 0; i < g->nstreams; i++) {
    ss_stream *st = &a->streams[i];
    const sl_hub_stats *hs = &g->hs[i];
    ss_sbuf_printf(b, "%s{\"name\":", i ? "," : "");
    ss_sbuf_json_str(b, st->name);
    ss_sbuf_printf(b, ",\"source\":");
    ss_sbuf_json_str(b, st->src ? ss_source_describe(st->src) : st->spec);
    ss_sbuf_printf(b,
                   ",\"fps_in\":%.1f,\"seq\":%llu,\"held\":%zu,\"frames_held\":%zu,"
                   "\"largest_frame\":%zu,\"viewers\":%zu,\"max_viewers\":%zu,\"refused\":%llu,"
                   "\"evictions\":{\"hard_limit\":%llu,\"soft_limit\":%llu,\"slot\":%llu,\"budget\":%llu},"
                   "\"drops\":",
                   hs->fps_in, (unsigned long long)hs->seq, hs->held, hs->frames_held,
                   hs->largest_frame, hs->subs, a->max_viewers, (unsigned long long)hs->refused,
                   (unsigned long long)hs->evictions[SL_EVICT_HARD],
                   (unsigned long long)hs->evictions[SL_EVICT_SOFT],
                   (unsigned long long)hs->evictions[SL_EVICT_SLOT],
                   (unsigned long long)hs->evictions[SL_EVICT_BUDGET]);
    drops_json(b, hs->drops);
    kind_json(b, hs);
    if (g->nloops > 1) {
      ss_sbuf_printf(b, ",\"viewers_per_loop\":[");
      for (int l = 0; l < g->nloops; l++)
        ss_sbuf_printf(b, "%s%zu", l ? "," : "", g->loop[l].hs[i].subs);
      ss_sbuf_printf(b, "],\"group_lost\":%llu,\"group_resyncs\":%llu",
                     (unsigned long long)hs->group_lost, (unsigned long long)hs->group_resyncs);
    }
    ss_edge_stream_json(a, st, b);
    ss_sbuf_printf(b, ",\"viewers_list\":[");
    int first = 1;
    for (int l = 0; l < g->nloops; l++)
      for (size_t k = 0; k < g->loop[l].nsubs[i]; k++, first = 0)
        viewer_json(b, &g->loop[l].subs[i][k], now, l, first);
    ss_sbuf_printf(b, "],\"recent_leaves\":[");
    pthread_mutex_lock(&a->recent_lock);
    unsigned cnt = st->nrecent < SS_RECENT ? st->nrecent : SS_RECENT;
    for (unsigned k = 0; k < cnt; k++) {
      struct ss_leave *l = &st->recent[(st->nrecent - 1 - k) % SS_RECENT];
      ss_sbuf_printf(b, "%s{\"id\":%llu,\"peer\":", k ? "," : "", (unsigned long long)l->id);
      ss_sbuf_json_str(b, l->peer);
      ss_sbuf_printf(b, ",\"transport\":\"%s\",\"reason\":\"%s\",\"evict\":\"%s\",\"at_ms\":%llu}",
                     ss_transport_name(l->transport), sl_close_reason_name(l->reason),
                     l->evict ? sl_evict_reason_name(l->evict) : "",
                     (unsigned long long)l->at_ms);
    }
    pthread_mutex_unlock(&a->recent_lock);
    ss_sbuf_printf(b, "]}");
  }
  /* After the streams: a reader that takes the first "viewers" or "held"
   * gets the stream's figure, as with one loop. */
  ss_sbuf_printf(b, "],\"loops\":[");
  for (int l = 0; l < g->nloops; l++) {
    size_t v = 0;
    for (int i = 0; i < g->nstreams; i++) v += g->loop[l].hs[i].subs;
    ss_sbuf_printf(b, "%s{\"loop\":%d,\"viewers\":%zu,\"connections\":%zu,\"held\":%zu,"
                   "\"accepted\":%llu%s}", l ? "," : "", l, v, g->loop[l].ms.conns,
                   g->loop[l].ms.held, (unsigned long long)g->loop[l].ms.accepted,
                   g->loop[l].missing ? ",\"missing\":true" : "");
  }
  ss_sbuf_printf(b, "]");
  ss_ops_json(a, b);
  ss_sbuf_printf(b, "}");
}

/* Prometheus label values: escape backslash, quote and newline. */
static void label(ss_sbuf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') ss_sbuf_printf(b, "\\%c", *s);
    else if (*s == '\n') ss_sbuf_printf(b, "\\n");
    else ss_sbuf_printf(b, "%c", *s);
  }
}

static void head(ss_sbuf *b, const char *name, const char *type, const char *help) {
  ss_sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prometheus(ss_app *a, const struct ss_gather *g, ss_sbuf *b) {
  sl_mgr_stats ms = g->ms;
  sl_mem_stats mem;
  sl_mem_stats_get(&mem);
  head(b, "sluice_memory_held_bytes", "gauge", "Bytes held by the manager: output chunks, input buffers, shared frames counted once.");
  ss_sbuf_printf(b, "sluice_memory_held_bytes %zu\n", ms.held);
  head(b, "sluice_memory_peak_bytes", "gauge", "Highest held bytes since start.");
  ss_sbuf_printf(b, "sluice_memory_peak_bytes %zu\n", ms.peak);
  head(b, "sluice_memory_budget_bytes", "gauge", "Held-bytes budget of the manager (0: off).");
  ss_sbuf_printf(b, "sluice_memory_budget_bytes %zu\n", ms.budget);
  head(b, "sluice_library_bytes", "gauge", "Every byte the library holds, by kind.");
  ss_sbuf_printf(b, "sluice_library_bytes{kind=\"out\"} %zu\nsluice_library_bytes{kind=\"in\"} %zu\n"
                 "sluice_library_bytes{kind=\"bufs\"} %zu\nsluice_library_bytes{kind=\"meta\"} %zu\n",
                 mem.out, mem.in, mem.bufs, mem.meta);
  head(b, "sluice_queued_bytes", "gauge", "Bytes queued on all connections (references counted per connection).");
  ss_sbuf_printf(b, "sluice_queued_bytes %zu\n", ms.queued);
  head(b, "sluice_process_rss_bytes", "gauge", "Resident set size of the process.");
  ss_sbuf_printf(b, "sluice_process_rss_bytes %zu\n", ss_rss_bytes());
  head(b, "sluice_connections", "gauge", "Open connections, listeners included.");
  ss_sbuf_printf(b, "sluice_connections %zu\n", ms.conns);
  head(b, "sluice_accepted_total", "counter", "Connections accepted.");
  ss_sbuf_printf(b, "sluice_accepted_total %llu\n", (unsigned long long)ms.accepted);
  head(b, "sluice_rejected_total", "counter", "Connections refused by a limit.");
  ss_sbuf_printf(b, "sluice_rejected_total %llu\n", (unsigned long long)ms.rejected);
  head(b, "sluice_closed_total", "counter", "Connections closed, by reason.");
  for (int r = SL_CLOSE_LOCAL; r <= SL_CLOSE_SHUTDOWN; r++)
    ss_sbuf_printf(b, "sluice_closed_total{reason=\"%s\"} %llu\n", sl_close_reason_name(r),
                   (unsigned long long)ms.closed_by[r]);

  const struct {
    const char *name, *type, *help;
  } per[] = {
      {"sluice_stream_frames_total", "counter", "Frames published."},
      {"sluice_stream_fps", "gauge", "Publish rate over the last seconds."},
      {"sluice_stream_viewers", "gauge", "Subscribers of the stream."},
      {"sluice_stream_held_bytes", "gauge", "Bytes of the stream's frames still alive (each once)."},
      {"sluice_stream_refused_total", "counter", "Viewers refused with 503."},
      {"sluice_stream_bitrate_bits", "gauge", "Bits per second published, over the last seconds."},
      {"sluice_stream_gop_bytes", "gauge", "H.264: bytes of the GOP kept for joining viewers."},
      {"sluice_stream_resyncs_total", "counter", "Skips of a viewer to the next keyframe."},
  };
  for (size_t k = 0; k < sizeof(per) / sizeof(per[0]); k++) {
    head(b, per[k].name, per[k].type, per[k].help);
    for (int i = 0; i < g->nstreams; i++) {
      sl_hub_stats hs = g->hs[i];
      ss_sbuf_printf(b, "%s{stream=\"", per[k].name);
      label(b, a->streams[i].name);
      switch (k) {
        case 0: ss_sbuf_printf(b, "\"} %llu\n", (unsigned long long)hs.frames_in); break;
        case 1: ss_sbuf_printf(b, "\"} %.2f\n", hs.fps_in); break;
        case 2: ss_sbuf_printf(b, "\"} %zu\n", hs.subs); break;
        case 3: ss_sbuf_printf(b, "\"} %zu\n", hs.held); break;
        case 4: ss_sbuf_printf(b, "\"} %llu\n", (unsigned long long)hs.refused); break;
        case 5: ss_sbuf_printf(b, "\"} %.0f\n", hs.bitrate); break;
        case 6: ss_sbuf_printf(b, "\"} %zu\n", hs.gop_bytes); break;
        default: ss_sbuf_printf(b, "\"} %llu\n", (unsigned long long)hs.resyncs); break;
      }
    }
  }
  head(b, "sluice_stream_drops_total", "counter", "Frames not sent to a viewer, by reason.");
  for (int i = 0; i < g->nstreams; i++) {
    sl_hub_stats hs = g->hs[i];
    for (int r = 0; r < SL_DROP_NREASONS; r++) {
      ss_sbuf_printf(b, "sluice_stream_drops_total{stream=\"");
      label(b, a->streams[i].name);
      ss_sbuf_printf(b, "\",reason=\"%s\"} %llu\n", sl_drop_reason_name(r), (unsigned long long)hs.drops[r]);
    }
  }
  head(b, "sluice_stream_evictions_total", "counter", "Viewers closed by the hub, by reason.");
  for (int i = 0; i < g->nstreams; i++) {
    sl_hub_stats hs = g->hs[i];
    for (int r = SL_EVICT_HARD; r <= SL_EVICT_BUDGET; r++) {
      ss_sbuf_printf(b, "sluice_stream_evictions_total{stream=\"");
      label(b, a->streams[i].name);
      ss_sbuf_printf(b, "\",reason=\"%s\"} %llu\n", sl_evict_reason_name(r), (unsigned long long)hs.evictions[r]);
    }
  }
  const struct {
    const char *name, *type, *help;
  } pv[] = {
      {"sluice_viewer_queued_bytes", "gauge", "Bytes queued on the viewer's connection."},
      {"sluice_viewer_lag_ms", "gauge", "Milliseconds behind live."},
      {"sluice_viewer_lag_frames", "gauge", "Frames behind live."},
      {"sluice_viewer_frames_sent_total", "counter", "Frames handed to the viewer's connection."},
      {"sluice_viewer_bytes_sent_total", "counter", "Bytes handed to the viewer's connection."},
      {"sluice_viewer_drops_total", "counter", "Frames not sent to the viewer, by reason."},
  };
  for (size_t k = 0; k < sizeof(pv) / sizeof(pv[0]); k++) {
    head(b, pv[k].name, pv[k].type, pv[k].help);
    for (int i = 0; i < g->nstreams; i++) {
      for (int l = 0; l < g->nloops; l++) {
      for (size_t j = 0; j < g->loop[l].nsubs[i]; j++) {
        const sl_sub_stats *v = &g->loop[l].subs[i][j].s;
        int nr = k == 5 ? SL_DROP_NREASONS : 1;
        for (int r = 0; r < nr; r++) {
          ss_sbuf_printf(b, "%s{stream=\"", pv[k].name);
          label(b, a->streams[i].name);
          ss_sbuf_printf(b, "\",viewer=\"%llu\",peer=\"", (unsigned long long)v->id);
          label(b, v->peer);
          ss_sbuf_printf(b, "\",transport=\"%s\"", ss_transport_name(v->transport));
          /* Connection ids are each loop's own: the loop keeps series apart. */
          if (g->nloops > 1) ss_sbuf_printf(b, ",loop=\"%d\"", l);
          switch (k) {
            case 0: ss_sbuf_printf(b, "} %zu\n", v->queued); break;
            case 1: ss_sbuf_printf(b, "} %llu\n", (unsigned long long)v->lag_ms); break;
            case 2: ss_sbuf_printf(b, "} %llu\n", (unsigned long long)v->lag_frames); break;
            case 3: ss_sbuf_printf(b, "} %llu\n", (unsigned long long)v->frames_sent); break;
            case 4: ss_sbuf_printf(b, "} %llu\n", (unsigned long long)v->bytes_sent); break;
            default:
              ss_sbuf_printf(b, ",reason=\"%s\"} %llu\n", sl_drop_reason_name(r),
                             (unsigned long long)v->drops[r]);
          }
        }
      }
      }
    }
  }
  ss_ops_prom(a, b);
}

/* ---- requests ------------------------------------------------------------ */

#define JSON_MAX (8u << 20)

static void gather_free(struct ss_gather *g) {
  ss_app *a = g->a;
  if (g->nloops > 1) {
    pthread_mutex_lock(&a->gather_lock);
    if (g->prev) g->prev->next = g->next;
    else a->gathers = g->next;
    if (g->next) g->next->prev = g->prev;
    pthread_mutex_unlock(&a->gather_lock);
  }
  for (int l = 0; l < g->nloops; l++)
    for (int i = 0; i < g->nstreams; i++) free(g->loop[l].subs[i]);
  free(g);
}

static void reply_sbuf(sl_conn *c, const char *type, ss_sbuf *b) {
  char hdr[128];
  if (b->overflow) {
    sl_http_reply_status(c, 500);
    return;
  }
  snprintf(hdr, sizeof(hdr), "Content-Type: %s\r\nCache-Control: no-store\r\n", type);
  sl_buf *buf = sl_buf_from(b->p ? b->p : "", b->len);
  if (buf == NULL) {
    sl_http_reply_status(c, 503);
    return;
  }
  if (sl_http_reply_buf(c, 200, hdr, buf, 0, b->len) != 0) sl_http_reply_status(c, 503);
  sl_buf_unref(buf);
}

/* Every part is in: render and answer, on the origin's thread. */
static void finish(struct ss_gather *g) {
  ss_app *a = g->a;
  ss_loop *lp = g->origin;
  merge(g);
  ss_sbuf b;
  ss_sbuf_init(&b, JSON_MAX);
  if (g->view == SS_VIEW_SSE) {
    ss_sbuf_printf(&b, "data: ");
    stats_json(a, g, &b);
    ss_sbuf_printf(&b, "\n\n");
    /* One shared buffer for every SSE client; one without room for it
     * skips this one (stale numbers are useless). */
    if (!b.overflow) {
      sl_buf *buf = sl_buf_from(b.p, b.len);
      for (int i = 0; buf && i < lp->nsse; i++)
        if (sl_conn_room(lp->sse[i]) >= b.len) sl_send_buf(lp->sse[i], buf, 0, b.len);
      sl_buf_unref(buf);
    }
  } else {
    sl_conn *c = sl_conn_find(lp->mgr, g->conn_id);
    int missing = 0;
    for (int l = 0; l < g->nloops; l++) missing |= g->loop[l].missing;
    if (c == NULL || sl_conn_is_closing(c)) {
      /* the client went away while the loops answered */
    } else if (missing) {
      sl_http_reply(c, 503, "Retry-After: 1\r\nContent-Type: text/plain\r\n",
                    "503 a loop is busy\n", 19);
    } else {
      if (g->view == SS_VIEW_METRICS) prometheus(a, g, &b);
      else if (g->view == SS_VIEW_STATS) stats_json(a, g, &b);
      else streams_json(a, g, &b);
      reply_sbuf(c, g->view == SS_VIEW_METRICS ? "text/plain; version=0.0.4" : "application/json",
                 &b);
    }
  }
  ss_sbuf_free(&b);
  gather_free(g);
}

static void on_finish(sl_mgr *m, void *arg) {
  (void)m;
  finish(arg);
}

/* One loop's part is in: the last one hands the snapshot to the origin. */
static void part_done(struct ss_gather *g, ss_loop *self) {
  if (atomic_fetch_sub(&g->pending, 1) != 1) return;
  if (self == g->origin) {
    finish(g);
  } else if (sl_mgr_call(g->origin->mgr, on_finish, g) != 0) {
    /* The origin's queue is full: its client gets no answer (it times
     * out); nothing else holds the request. */
    gather_free(g);
  }
}

static void on_fill(sl_mgr *m, void *arg) {
  struct ss_gather *g = arg;
  ss_loop *lp = ss_loop_of(g->a, m);
  fill(g, lp);
  part_done(g, lp);
}

void ss_view_request(ss_loop *lp, sl_conn *c, int view) {
  ss_app *a = lp->app;
  int n = a->nloops;
  struct ss_gather *g = calloc(1, sizeof(*g) + (size_t)n * sizeof(g->loop[0]));
  if (g == NULL) {
    if (c) sl_http_reply_status(c, 503);
    return;
  }
  g->a = a;
  g->origin = lp;
  g->conn_id = c ? sl_conn_id(c) : 0;
  g->view = view;
  g->nstreams = a->nstreams;
  g->nloops = n;
  atomic_init(&g->pending, n);
  if (n > 1) {
    pthread_mutex_lock(&a->gather_lock);
    g->next = a->gathers;
    if (g->next) g->next->prev = g;
    a->gathers = g;
    pthread_mutex_unlock(&a->gather_lock);
  }
  /* Ask the others first: the own part is taken last, so with one loop
   * the whole view is made here, as the request arrives. */
  for (int l = 0; l < n; l++) {
    if (l == lp->idx) continue;
    /* A loop still starting has no manager to ask yet. */
    if (!atomic_load(&a->loops[l].up) || sl_mgr_call(a->loops[l].mgr, on_fill, g) != 0) {
      g->loop[l].missing = 1;
      atomic_fetch_sub(&g->pending, 1);
    }
  }
  fill(g, lp);
  part_done(g, lp);
}

void ss_view_free_pending(ss_app *a) {
  while (a->gathers) gather_free(a->gathers);
}

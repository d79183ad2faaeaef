/* The numbers of sluice-stream, as JSON (/api/stats, /api/events) and as
 * Prometheus text (/metrics): library memory, each stream, each viewer. */
#include <stdio.h>
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

static ss_stream *stream_of(ss_app *a, sl_hub *h) {
  for (int i = 0; i < a->nstreams; i++)
    if (a->streams[i].hub == h) return &a->streams[i];
  return NULL;
}

/* Log joins and leaves, and remember the last leaves for the dashboard. */
void ss_on_hub_event(sl_hub *h, const sl_hub_event *e, void *arg) {
  ss_app *a = arg;
  ss_stream *st = stream_of(a, h);
  const char *name = sl_hub_name(h);
  if (e->type == SL_HUB_JOIN) {
    sl_log(SL_LOG_INFO, "stream %s: viewer %llu %s joined (%s)", name,
           (unsigned long long)e->sub_id, e->peer, ss_transport_name(e->transport));
  } else if (e->type == SL_HUB_LEAVE) {
    sl_log(e->evict ? SL_LOG_WARN : SL_LOG_INFO,
           "stream %s: viewer %llu %s left: %s%s%s", name, (unsigned long long)e->sub_id,
           e->peer, sl_close_reason_name(e->reason), e->evict ? ", evicted: " : "",
           e->evict ? sl_evict_reason_name(e->evict) : "");
    if (st) {
      struct ss_leave *l = &st->recent[st->nrecent++ % SS_RECENT];
      l->id = e->sub_id;
      l->at_ms = sl_mgr_now(a->mgr) - a->started_ms;
      snprintf(l->peer, sizeof(l->peer), "%s", e->peer ? e->peer : "");
      l->transport = e->transport;
      l->reason = e->reason;
      l->evict = e->evict;
    }
  } else if (e->type == SL_HUB_NOT_READY) {
    sl_log(SL_LOG_INFO, "stream %s: a lossless viewer is full; producer waits", name);
  }
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
   * is what a fan-out benchmark checks. */
  ss_sbuf_printf(b, ",\"frames_in\":%llu,\"mp4_fragments\":%llu,\"mp4_bytes\":%llu",
                 (unsigned long long)hs->frames_in, (unsigned long long)hs->mp4_fragments,
                 (unsigned long long)hs->mp4_bytes);
}

void ss_streams_json(ss_app *a, ss_sbuf *b) {
  ss_sbuf_printf(b, "{\"streams\":[");
  for (int i = 0; i < a->nstreams; i++) {
    ss_stream *st = &a->streams[i];
    sl_hub_stats hs;
    sl_hub_stats_get(st->hub, &hs);
    ss_sbuf_printf(b, "%s{\"name\":", i ? "," : "");
    ss_sbuf_json_str(b, st->name);
    ss_sbuf_printf(b, ",\"base\":");
    ss_sbuf_json_str(b, st->base);
    if (hs.kind == SL_KIND_H264)
      ss_sbuf_printf(b, ",\"h264\":\"%sstream.h264\",\"ws\":\"%sws\"", st->base, st->base);
    else
      ss_sbuf_printf(b, ",\"mjpeg\":\"%sstream.mjpg\",\"ws\":\"%sws\",\"snapshot\":\"%ssnapshot.jpg\"",
                     st->base, st->base, st->base);
    kind_json(b, &hs);
    /* The picture size: the SPS's for H.264, the generated one otherwise. */
    int w = hs.width ? hs.width : a->src.width, hh = hs.height ? hs.height : a->src.height;
    ss_sbuf_printf(b, ",\"seq\":%llu,\"width\":%d,\"height\":%d,\"fps\":%.1f,\"viewers\":%zu,\"source\":",
                   (unsigned long long)hs.seq, w, hh, hs.fps_in, hs.subs);
    ss_sbuf_json_str(b, st->src ? ss_source_describe(st->src) : st->spec);
    ss_sbuf_printf(b, "}");
  }
  ss_sbuf_printf(b, "]}");
}

void ss_stats_json(ss_app *a, ss_sbuf *b) {
  sl_mgr_stats ms;
  sl_mem_stats mem;
  sl_mgr_stats_get(a->mgr, &ms);
  sl_mem_stats_get(&mem);
  uint64_t now = sl_mgr_now(a->mgr);
  ss_sbuf_printf(b,
                 "{\"version\":\"%s\",\"uptime_ms\":%llu,\"rss_bytes\":%zu,"
                 "\"memory\":{\"held\":%zu,\"peak\":%zu,\"budget\":%zu,\"lib_total\":%zu,"
                 "\"lib_meta\":%zu,\"lib_bufs\":%zu,\"lib_out\":%zu,\"lib_in\":%zu,"
                 "\"queued\":%zu},\"connections\":%zu,\"streams\":[",
                 sl_version(), (unsigned long long)(now - a->started_ms), ss_rss_bytes(),
                 ms.held, ms.peak, ms.budget, mem.total, mem.meta, mem.bufs, mem.out, mem.in, ms.queued,
                 ms.conns);
  static sl_sub_stats subs[2048];
  for (int i = 0; i < a->nstreams; i++) {
    ss_stream *st = &a->streams[i];
    sl_hub_stats hs;
    sl_hub_stats_get(st->hub, &hs);
    ss_sbuf_printf(b, "%s{\"name\":", i ? "," : "");
    ss_sbuf_json_str(b, st->name);
    ss_sbuf_printf(b, ",\"source\":");
    ss_sbuf_json_str(b, st->src ? ss_source_describe(st->src) : st->spec);
    ss_sbuf_printf(b,
                   ",\"fps_in\":%.1f,\"seq\":%llu,\"held\":%zu,\"frames_held\":%zu,"
                   "\"largest_frame\":%zu,\"viewers\":%zu,\"max_viewers\":%zu,\"refused\":%llu,"
                   "\"evictions\":{\"hard_limit\":%llu,\"soft_limit\":%llu,\"slot\":%llu,\"budget\":%llu},"
                   "\"drops\":",
                   hs.fps_in, (unsigned long long)hs.seq, hs.held, hs.frames_held,
                   hs.largest_frame, hs.subs, hs.max_subs, (unsigned long long)hs.refused,
                   (unsigned long long)hs.evictions[SL_EVICT_HARD],
                   (unsigned long long)hs.evictions[SL_EVICT_SOFT],
                   (unsigned long long)hs.evictions[SL_EVICT_SLOT],
                   (unsigned long long)hs.evictions[SL_EVICT_BUDGET]);
    drops_json(b, hs.drops);
    kind_json(b, &hs);
    ss_edge_stream_json(a, st, b);
    ss_sbuf_printf(b, ",\"viewers_list\":[");
    size_t n = sl_hub_subs(st->hub, subs, sizeof(subs) / sizeof(subs[0]));
    if (n > sizeof(subs) / sizeof(subs[0])) n = sizeof(subs) / sizeof(subs[0]);
    for (size_t k = 0; k < n; k++) {
      sl_sub_stats *v = &subs[k];
      ss_sbuf_printf(b, "%s{\"id\":%llu,\"peer\":", k ? "," : "", (unsigned long long)v->id);
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
      int dscp, prio;
      ss_qos_read(a, v->id, &dscp, &prio);
      ss_sbuf_printf(b, ",\"state\":\"%s\",\"age_ms\":%llu,\"stalled_ms\":%llu,"
                     "\"dscp\":%d,\"priority\":%d}",
                     v->stalled ? "stalled" : "active",
                     (unsigned long long)(now - v->joined_ms),
                     (unsigned long long)(v->queued ? now - v->last_progress_ms : 0), dscp, prio);
    }
    ss_sbuf_printf(b, "],\"recent_leaves\":[");
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
    ss_sbuf_printf(b, "]}");
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

void ss_stats_prometheus(ss_app *a, ss_sbuf *b) {
  sl_mgr_stats ms;
  sl_mem_stats mem;
  sl_mgr_stats_get(a->mgr, &ms);
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

  static sl_sub_stats subs[2048];
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
    for (int i = 0; i < a->nstreams; i++) {
      sl_hub_stats hs;
      sl_hub_stats_get(a->streams[i].hub, &hs);
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
  for (int i = 0; i < a->nstreams; i++) {
    sl_hub_stats hs;
    sl_hub_stats_get(a->streams[i].hub, &hs);
    for (int r = 0; r < SL_DROP_NREASONS; r++) {
      ss_sbuf_printf(b, "sluice_stream_drops_total{stream=\"");
      label(b, a->streams[i].name);
      ss_sbuf_printf(b, "\",reason=\"%s\"} %llu\n", sl_drop_reason_name(r), (unsigned long long)hs.drops[r]);
    }
  }
  head(b, "sluice_stream_evictions_total", "counter", "Viewers closed by the hub, by reason.");
  for (int i = 0; i < a->nstreams; i++) {
    sl_hub_stats hs;
    sl_hub_stats_get(a->streams[i].hub, &hs);
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
    for (int i = 0; i < a->nstreams; i++) {
      size_t n = sl_hub_subs(a->streams[i].hub, subs, sizeof(subs) / sizeof(subs[0]));
      if (n > sizeof(subs) / sizeof(subs[0])) n = sizeof(subs) / sizeof(subs[0]);
      for (size_t j = 0; j < n; j++) {
        sl_sub_stats *v = &subs[j];
        int nr = k == 5 ? SL_DROP_NREASONS : 1;
        for (int r = 0; r < nr; r++) {
          ss_sbuf_printf(b, "%s{stream=\"", pv[k].name);
          label(b, a->streams[i].name);
          ss_sbuf_printf(b, "\",viewer=\"%llu\",peer=\"", (unsigned long long)v->id);
          label(b, v->peer);
          ss_sbuf_printf(b, "\",transport=\"%s\"", ss_transport_name(v->transport));
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
  ss_ops_prom(a, b);
}

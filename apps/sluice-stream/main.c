/*
 * sluice-stream: a live-video server. Command line and config file, set-up
 * of the streams and their sources, the loop, and a clean shutdown that
 * returns every counter to zero.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "app.h"

#define DEFAULT_BUDGET (64u << 20)

static volatile sig_atomic_t stop_signal, reload_signal;
static void on_signal(int sig) { stop_signal = sig; }
static void on_hup(int sig) { reload_signal = sig; }

static void usage(FILE *f) {
  fprintf(f,
"Usage: sluice-stream [OPTIONS]\n"
"Serve live video to browsers with bounded memory whatever the viewers do.\n"
"\n"
"Streams and sources:\n"
"  -s, --source SPEC        source of the default stream (default: testpattern)\n"
"      --stream NAME=SPEC   add a named stream, served under /streams/NAME/\n"
"                           SPEC: testpattern | dir:PATH | - (MJPEG or H.264\n"
"                                 Annex-B on stdin, told apart by its first bytes)\n"
"                                 | http[s]://HOST/PATH (MJPEG relay, or H.264\n"
"                                 when PATH ends in .h264)\n"
"                                 | ws[s]://HOST/PATH (sluice WebSocket relay);\n"
"                                 https/wss relays trust the system's CAs, or\n"
"                                 the bundle named by $SSL_CERT_FILE\n"
"      --size WxH           generated frame size (640x480)\n"
"      --fps N              frames per second of generated/dir sources (30)\n"
"      --quality Q          JPEG quality of the test pattern, 1..100 (80)\n"
"      --codec C            mjpeg | h264 | auto: the codec of sources that do\n"
"                           not say (the test pattern: MJPEG; stdin: its first\n"
"                           bytes; a ws relay: MJPEG). A relay URL ending in\n"
"                           .h264 or .mjpg says, and so does a source spec\n"
"                           prefix: --stream cam=h264:- or mjpeg:http://...\n"
"      --bitrate KBPS       H.264 test pattern bitrate (by size: 1000 at 640x480)\n"
"      --gop N              H.264 test pattern: frames between IDRs (2 s)\n"
"      --gop-max BYTES      H.264: bytes of the GOP kept for joining viewers (4M)\n"
"      --demo-streams N     add N test-pattern streams demo1..demoN (for /grid)\n"
"      --max-frame BYTES    largest frame accepted from stdin/dir/relays (8M)\n"
"      --source-user U:P    credentials for relay sources (Basic or Digest)\n"
"\n"
"Server:\n"
"  -l, --listen ADDR        address to listen on (127.0.0.1:8080); other\n"
"                           interfaces only when asked, e.g. 0.0.0.0:8080\n"
"      --threads N|auto     event loops, one per thread, 1..16 (auto): auto\n"
"                           is the online CPUs, at most 4 (1 on a single CPU). Each\n"
"                           listens on the same address (SO_REUSEPORT: the\n"
"                           kernel spreads new connections) and serves every\n"
"                           route with its own hub per stream; a source's\n"
"                           frames are stored once for all of them. The API\n"
"                           and /metrics show the totals. --edge runs 1\n"
"                           loop (streams appear at run time)\n"
"      --max-viewers N      viewers per stream (1000); when full, a viewer\n"
"                           stalled for 5 s is evicted, else 503 (with\n"
);
  fprintf(f,
"                           several loops: 503 once the stream is full;\n"
"                           eviction happens within a loop)\n"
"      --budget BYTES       library memory budget (64M; 0: off)\n"
"      --token TOKEN        require 'Authorization: Bearer TOKEN' or ?token=\n"
"      --basic USER:PASS    require HTTP Basic auth (pages included)\n"
"      --allow-origin URL   allow WebSocket viewers from this page origin\n"
"                           (repeatable; default: same origin only; * = any)\n"
"      --cors ORIGIN[,ORIGIN]  let pages of these origins read the HTTP streams\n"
"                           (/stream.mjpg, /stream.bin) across sites: CORS\n"
"                           headers for them only (repeatable; * = any page;\n"
"                           default: none, same-origin pages only)\n"
"      --allow-lossless     let viewers ask for policy=lossless\n"
"      --tls-cert FILE      serve every endpoint over HTTPS/WSS with this PEM\n"
"                           certificate (chain) ...\n"
"      --tls-key FILE       ... and its PEM private key; SIGHUP reloads both\n"
"                           (new connections get the new certificate, viewers\n"
"                           already watching are not dropped)\n"
"\n"
"Viewer defaults (each viewer may ask ?fps=N&policy=...&lowat=...):\n"
"      --policy P           latest | queue:N | keyframe | lossless (latest)\n"
"      --fps-cap N          frame-rate cap per viewer (0: none)\n"
"      --send-max BYTES     per-viewer queue cap (0: 2 x largest frame + 64K)\n"
"      --stall-ms MS        close a viewer that made no progress (300000)\n"
"      --lowat BYTES        TCP_NOTSENT_LOWAT of viewer sockets: auto (the\n"
"                           stream's average frame, 16K..128K), kernel (not\n"
"                           set), or 4K..16M; a viewer may ask ?lowat=4096..1M\n"
"\n"
);
  ss_ops_usage(f);
  fprintf(f,
"Other:\n"
"  -c, --config FILE        read options from FILE (one 'option = value' per line)\n"
"      --log-level L        error | warn | info | debug (info)\n"
"  -h, --help               this help\n"
"  -V, --version            print the version\n"
"\n"
"Endpoints: / (viewer), /dashboard, /grid (every stream), /stream.mjpg (MJPEG streams),\n"
"/stream.h264 (H.264 streams: raw Annex-B), /ws, /snapshot.jpg (MJPEG),\n"
"/mux (many streams on one WebSocket), /metrics, /api/stats, /api/streams, /api/events,\n"
"/healthz; per stream under /streams/NAME/.\n"
"Sizes accept K, M and G suffixes.\n");
}

enum {
  OPT_STREAM = 256, OPT_SIZE, OPT_FPS, OPT_QUALITY, OPT_MAX_FRAME, OPT_SOURCE_USER,
  OPT_MAX_VIEWERS, OPT_BUDGET, OPT_TOKEN, OPT_BASIC, OPT_ORIGIN, OPT_LOSSLESS,
  OPT_POLICY, OPT_FPS_CAP, OPT_SEND_MAX, OPT_STALL, OPT_LOWAT, OPT_LOG, OPT_TLS_CERT, OPT_TLS_KEY,
  OPT_CODEC, OPT_BITRATE, OPT_GOP, OPT_GOP_MAX, OPT_CORS, OPT_DEMO,
  OPT_EDGE, OPT_EDGE_POLL, OPT_DRAIN_TIMEOUT, OPT_DSCP, OPT_PRIORITY, OPT_STREAM_QOS,
  OPT_THREADS
};

static const struct option long_opts[] = {
    {"source", required_argument, 0, 's'},      {"stream", required_argument, 0, OPT_STREAM},
    {"size", required_argument, 0, OPT_SIZE},   {"fps", required_argument, 0, OPT_FPS},
    {"quality", required_argument, 0, OPT_QUALITY},
    {"codec", required_argument, 0, OPT_CODEC}, {"bitrate", required_argument, 0, OPT_BITRATE},
    {"gop", required_argument, 0, OPT_GOP}, {"gop-max", required_argument, 0, OPT_GOP_MAX},
    {"demo-streams", required_argument, 0, OPT_DEMO},
    {"max-frame", required_argument, 0, OPT_MAX_FRAME},
    {"source-user", required_argument, 0, OPT_SOURCE_USER},
    {"listen", required_argument, 0, 'l'},      {"threads", required_argument, 0, OPT_THREADS},
    {"max-viewers", required_argument, 0, OPT_MAX_VIEWERS},
    {"budget", required_argument, 0, OPT_BUDGET}, {"token", required_argument, 0, OPT_TOKEN},
    {"basic", required_argument, 0, OPT_BASIC},
    {"allow-origin", required_argument, 0, OPT_ORIGIN},
    {"cors", required_argument, 0, OPT_CORS},
    {"allow-lossless", no_argument, 0, OPT_LOSSLESS},
    {"tls-cert", required_argument, 0, OPT_TLS_CERT},
    {"tls-key", required_argument, 0, OPT_TLS_KEY},
    {"policy", required_argument, 0, OPT_POLICY}, {"fps-cap", required_argument, 0, OPT_FPS_CAP},
    {"send-max", required_argument, 0, OPT_SEND_MAX},
    {"stall-ms", required_argument, 0, OPT_STALL},
    {"lowat", required_argument, 0, OPT_LOWAT},
    {"edge", required_argument, 0, OPT_EDGE}, {"edge-poll", required_argument, 0, OPT_EDGE_POLL},
    {"drain-timeout", required_argument, 0, OPT_DRAIN_TIMEOUT},
    {"dscp", required_argument, 0, OPT_DSCP}, {"priority", required_argument, 0, OPT_PRIORITY},
    {"stream-qos", required_argument, 0, OPT_STREAM_QOS},
    {"config", required_argument, 0, 'c'},      {"log-level", required_argument, 0, OPT_LOG},
    {"help", no_argument, 0, 'h'},              {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0}};

static char *source_user_store;
static char origin_store[SS_MAX_ORIGINS][256];
static int norigins;
static char cors_store[SS_MAX_ORIGINS][256];
static int ncors;

/* --threads auto: one loop per online CPU, at most 4 (past that the
 * producer threads and the kernel's share of the work matter more); one
 * on a single CPU, where a second loop only adds hand-offs. It is the
 * default (docs/scale-out.md). */
static int auto_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 1) return 1;
  return n > 4 ? 4 : (int)n;
}

static int fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "sluice-stream: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\nTry 'sluice-stream --help'.\n");
  return -1;
}

static int parse_size(const char *v, size_t *out) {
  char *e;
  errno = 0;
  unsigned long long n = strtoull(v, &e, 10);
  if (e == v || errno || v[0] == '-') return -1;
  if (*e == 'K' || *e == 'k') n <<= 10, e++;
  else if (*e == 'M' || *e == 'm') n <<= 20, e++;
  else if (*e == 'G' || *e == 'g') n <<= 30, e++;
  if (*e && strcmp(e, "iB") != 0 && strcmp(e, "B") != 0) return -1;
  *out = (size_t)n;
  return 0;
}

static int parse_num(const char *v, double lo, double hi, double *out) {
  char *e;
  double d = strtod(v, &e);
  if (e == v || *e || !(d >= lo && d <= hi)) return -1;
  *out = d;
  return 0;
}

static int add_stream(ss_app *a, const char *name, const char *spec) {
  if (a->nstreams == SS_MAX_STREAMS) return fail("too many streams (at most %s)%s", "48", "");
  if (!name[0] || strlen(name) >= sizeof(a->streams[0].name) || strpbrk(name, "/?#% "))
    return fail("--stream %s: the name must be 1-63 characters without / ? # %% or spaces%s", name, "");
  for (int i = 0; i < a->nstreams; i++)
    if (strcmp(a->streams[i].name, name) == 0) return fail("stream '%s' given twice%s", name, "");
  ss_stream *st = &a->streams[a->nstreams++];
  snprintf(st->name, sizeof(st->name), "%s", name);
  snprintf(st->spec, sizeof(st->spec), "%s", spec);
  return 0;
}

/* The options of edge.h: edge mode, drain, QoS. */
static int apply_ops(ss_app *a, int opt, const char *v) {
  double d;
  switch (opt) {
    case OPT_EDGE:
      if (ss_ops_edge(&a->ops, v))
        return fail("--edge %s: use the origin's http[s]://HOST:PORT, e.g. http://10.0.0.5:8080%s",
                    v, "");
      return 0;
    case OPT_EDGE_POLL:
      if (parse_num(v, 100, 600000, &d)) return fail("--edge-poll %s: use 100..600000 ms%s", v, "");
      a->ops.poll_ms = (uint32_t)d;
      return 0;
    case OPT_DRAIN_TIMEOUT:
      if (parse_num(v, 0, 86400, &d)) return fail("--drain-timeout %s: use 0..86400 s%s", v, "");
      a->ops.drain_timeout_ms = (uint32_t)(d * 1000);
      return 0;
    case OPT_DSCP:
      if (ss_ops_dscp(v, &a->ops.qos.dscp))
        return fail("--dscp %s: use AF11..AF43, EF, CS0..CS7, VA, LE or 0..63%s", v, "");
      return 0;
    case OPT_PRIORITY:
      if (parse_num(v, 0, 6, &d)) return fail("--priority %s: use 0..6%s", v, "");
      a->ops.qos.priority = (int)d;
      return 0;
    case OPT_STREAM_QOS:
      if (ss_ops_stream_qos(&a->ops, v))
        return fail("--stream-qos %s: use NAME=DSCP[:PRIORITY], e.g. cam1=AF41:4 (at most %s)",
                    v, "16");
      return 0;
    default:
      return -1;
  }
}

static int apply(ss_app *a, int opt, const char *v) {
  double d;
  size_t z;
  switch (opt) {
    case 's':
      if (a->nstreams && strcmp(a->streams[0].name, "default") == 0)
        snprintf(a->streams[0].spec, sizeof(a->streams[0].spec), "%s", v);
      else if (add_stream(a, "default", v)) return -1;
      /* The default stream is always first. */
      if (a->nstreams > 1 && strcmp(a->streams[a->nstreams - 1].name, "default") == 0) {
        ss_stream t = a->streams[a->nstreams - 1];
        memmove(&a->streams[1], &a->streams[0], (size_t)(a->nstreams - 1) * sizeof(t));
        a->streams[0] = t;
      }
      return 0;
    case OPT_STREAM: {
      const char *eq = strchr(v, '=');
      char name[128];
      if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof(name))
        return fail("--stream %s: use NAME=SOURCE, e.g. --stream cam2=dir:/srv/jpegs%s", v, "");
      memcpy(name, v, (size_t)(eq - v));
      name[eq - v] = '\0';
      return add_stream(a, name, eq + 1);
    }
    case OPT_DEMO: {
      /* demo1..demoN: test patterns beside the other streams, for /grid. */
      if (parse_num(v, 1, SS_MAX_STREAMS - 1, &d) || d != (int)d)
        return fail("--demo-streams %s: use 1..%s", v, "47");
      for (int i = 1; i <= (int)d; i++) {
        char name[16];
        snprintf(name, sizeof(name), "demo%d", i);
        int known = 0;
        for (int k = 0; k < a->nstreams; k++) known |= strcmp(a->streams[k].name, name) == 0;
        if (!known && add_stream(a, name, "testpattern")) return -1;
      }
      return 0;
    }
    case OPT_SIZE: {
      int w, h;
      char extra;
      if (sscanf(v, "%dx%d%c", &w, &h, &extra) != 2 || w < 64 || h < 64 || w > 7680 || h > 4320)
        return fail("--size %s: use WIDTHxHEIGHT between 64x64 and 7680x4320, e.g. 1280x720%s", v, "");
      a->src.width = w;
      a->src.height = h;
      return 0;
    }
    case OPT_FPS:
      if (parse_num(v, 0.1, 240, &d)) return fail("--fps %s: use a number from 0.1 to 240%s", v, "");
      a->src.fps = d;
      return 0;
    case OPT_QUALITY:
      if (parse_num(v, 1, 100, &d)) return fail("--quality %s: use 1..100%s", v, "");
      a->src.quality = (int)d;
      return 0;
    case OPT_CODEC:
      if (strcmp(v, "h264") == 0 || strcmp(v, "H.264") == 0) a->src.codec = SS_CODEC_H264;
      else if (strcmp(v, "mjpeg") == 0) a->src.codec = SS_CODEC_MJPEG;
      else if (strcmp(v, "auto") == 0) a->src.codec = SS_CODEC_AUTO;
      else return fail("--codec %s: use mjpeg, h264 or auto%s", v, "");
      return 0;
    case OPT_BITRATE:
      if (parse_num(v, 50, 100000, &d)) return fail("--bitrate %s: use 50..100000 (kbit/s)%s", v, "");
      a->src.bitrate_kbps = (int)d;
      return 0;
    case OPT_GOP:
      if (parse_num(v, 1, 600, &d)) return fail("--gop %s: use 1..600 frames%s", v, "");
      a->src.gop_frames = (int)d;
      return 0;
    case OPT_GOP_MAX:
      if (parse_size(v, &z) || z < 4096 || z > (256u << 20))
        return fail("--gop-max %s: use a size from 4K to 256M%s", v, "");
      a->gop_max = z;
      return 0;
    case OPT_MAX_FRAME:
      if (parse_size(v, &z) || z < 1024 || z > (256u << 20))
        return fail("--max-frame %s: use a size from 1K to 256M%s", v, "");
      a->src.max_frame = z;
      return 0;
    case OPT_SOURCE_USER: {
      free(source_user_store);
      source_user_store = strdup(v);
      char *colon = source_user_store ? strchr(source_user_store, ':') : NULL;
      if (colon == NULL) return fail("--source-user: use USER:PASS%s%s", "", "");
      *colon = '\0';
      a->src.user = source_user_store;
      a->src.pass = colon + 1;
      return 0;
    }
    case 'l':
      if (strlen(v) >= sizeof(a->listen)) return fail("--listen %s: too long%s", v, "");
      snprintf(a->listen, sizeof(a->listen), "%s", v);
      return 0;
    case OPT_THREADS:
      if (strcmp(v, "auto") == 0) {
        a->threads = auto_threads();
        return 0;
      }
      if (parse_num(v, 1, SS_MAX_LOOPS, &d) || d != (int)d)
        return fail("--threads %s: use 1..%s or auto", v, "16");
      a->threads = (int)d;
      return 0;
    case OPT_MAX_VIEWERS:
      if (parse_num(v, 1, 100000, &d)) return fail("--max-viewers %s: use 1..100000%s", v, "");
      a->max_viewers = (size_t)d;
      return 0;
    case OPT_BUDGET:
      if (parse_size(v, &z)) return fail("--budget %s: use a size such as 64M, or 0 for none%s", v, "");
      a->budget = z;
      return 0;
    case OPT_TOKEN:
      if (!v[0] || strlen(v) >= sizeof(a->token)) return fail("--token: 1 to 255 characters%s%s", "", "");
      snprintf(a->token, sizeof(a->token), "%s", v);
      return 0;
    case OPT_BASIC: {
      const char *colon = strchr(v, ':');
      if (colon == NULL || colon == v || strlen(colon + 1) >= sizeof(a->basic_pass) ||
          (size_t)(colon - v) >= sizeof(a->basic_user))
        return fail("--basic: use USER:PASS%s%s", "", "");
      snprintf(a->basic_user, sizeof(a->basic_user), "%.*s", (int)(colon - v), v);
      snprintf(a->basic_pass, sizeof(a->basic_pass), "%s", colon + 1);
      return 0;
    }
    case OPT_ORIGIN:
      if (strcmp(v, "*") == 0) {
        a->any_origin = 1;
        return 0;
      }
      if (norigins == SS_MAX_ORIGINS || strlen(v) >= 256 ||
          (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0))
        return fail("--allow-origin %s: use an origin such as http://example.com:8000 (at most %s)", v, "16");
      snprintf(origin_store[norigins], 256, "%s", v);
      a->origins[norigins] = origin_store[norigins];
      norigins++;
      return 0;
    case OPT_CORS:
      for (const char *p = v; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int any = n == 1 && *p == '*';
        if (ncors == SS_MAX_ORIGINS || n == 0 || n >= 256 ||
            (!any && strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0))
          return fail("--cors %s: use origins such as http://example.com:8000 or * (at most %s)",
                      v, "16");
        snprintf(cors_store[ncors], 256, "%.*s", (int)n, p);
        a->cors[ncors] = cors_store[ncors];
        ncors++;
        p += n + (e != NULL);
      }
      a->sub.cors_origins = a->cors;
      return 0;
    case OPT_LOSSLESS:
      a->allow_lossless = 1;
      return 0;
    case OPT_TLS_CERT:
    case OPT_TLS_KEY: {
      char *dst = opt == OPT_TLS_CERT ? a->tls_cert : a->tls_key;
      if (!v[0] || strlen(v) >= sizeof(a->tls_cert))
        return fail("--%s: a file name of 1 to 511 characters%s",
                    opt == OPT_TLS_CERT ? "tls-cert" : "tls-key", "");
      snprintf(dst, sizeof(a->tls_cert), "%s", v);
      return 0;
    }
    case OPT_POLICY:
      if (strcmp(v, "latest") == 0) a->sub.policy = SL_POLICY_LATEST;
      else if (strcmp(v, "keyframe") == 0) a->sub.policy = SL_POLICY_KEYFRAME;
      else if (strcmp(v, "lossless") == 0) a->sub.policy = SL_POLICY_LOSSLESS;
      else if (strncmp(v, "queue:", 6) == 0 && parse_num(v + 6, 1, 64, &d) == 0) {
        a->sub.policy = SL_POLICY_QUEUE;
        a->sub.queue_len = (unsigned)d;
      } else {
        return fail("--policy %s: use latest, queue:N (1..64), keyframe or lossless%s", v, "");
      }
      return 0;
    case OPT_FPS_CAP:
      if (parse_num(v, 0, 1000, &d)) return fail("--fps-cap %s: use 0..1000%s", v, "");
      a->sub.fps = d;
      return 0;
    case OPT_SEND_MAX:
      if (parse_size(v, &z)) return fail("--send-max %s: use a size such as 512K%s", v, "");
      a->sub.send_max = z;
      return 0;
    case OPT_STALL:
      if (parse_num(v, 100, 86400000, &d)) return fail("--stall-ms %s: use 100..86400000%s", v, "");
      a->sub.stall_ms = (uint32_t)d;
      return 0;
    case OPT_LOWAT:
      if (strcmp(v, "auto") == 0) a->sub.notsent_lowat = 0;
      else if (strcmp(v, "kernel") == 0) a->sub.notsent_lowat = SL_LOWAT_KERNEL;
      else if (parse_size(v, &z) == 0 && z >= 4096 && z <= (16u << 20)) a->sub.notsent_lowat = z;
      else return fail("--lowat %s: use auto, kernel or a size of 4K..16M%s", v, "");
      return 0;
    case OPT_LOG:
      if (strcmp(v, "error") == 0) a->log_level = SL_LOG_ERROR;
      else if (strcmp(v, "warn") == 0) a->log_level = SL_LOG_WARN;
      else if (strcmp(v, "info") == 0) a->log_level = SL_LOG_INFO;
      else if (strcmp(v, "debug") == 0) a->log_level = SL_LOG_DEBUG;
      else return fail("--log-level %s: use error, warn, info or debug%s", v, "");
      return 0;
    default:
      return apply_ops(a, opt, v);
  }
}

static int read_config(ss_app *a, const char *path, int depth);

static int apply_named(ss_app *a, const char *name, const char *value, int depth) {
  for (const struct option *o = long_opts; o->name; o++) {
    if (strcmp(o->name, name) != 0) continue;
    if (o->val == 'h' || o->val == 'V') break;
    if (o->val == 'c') return read_config(a, value, depth + 1);
    if (o->has_arg == no_argument) {
      if (value[0] && strcmp(value, "true") != 0 && strcmp(value, "yes") != 0 && strcmp(value, "1") != 0)
        return strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "0") == 0
                   ? 0
                   : fail("config: %s takes no value (or true/false), not '%s'", name, value);
      return apply(a, o->val, "");
    }
    if (!value[0]) return fail("config: %s needs a value%s", name, "");
    return apply(a, o->val, value);
  }
  return fail("config: unknown option '%s'%s", name, "");
}

/* One "option = value" (or "option value") per line; '#' starts a comment. */
static int read_config(ss_app *a, const char *path, int depth) {
  if (depth > 4) return fail("config: %s: nested too deeply%s", path, "");
  FILE *f = fopen(path, "r");
  if (f == NULL) return fail("cannot read config file %s: %s", path, strerror(errno));
  char line[1024];
  int lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof(line), f)) {
    lineno++;
    char *p = line, *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    while (*p == ' ' || *p == '\t') p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) p[--n] = '\0';
    if (!*p) continue;
    char *sep = p + strcspn(p, " \t=");
    char *val = sep;
    if (*sep) {
      *sep = '\0';
      val = sep + 1;
      while (*val == ' ' || *val == '\t' || *val == '=') val++;
    }
    if (p[0] == '-' && p[1] == '-') p += 2;
    rc = apply_named(a, p, val, depth);
    if (rc) fprintf(stderr, "  (in %s, line %d)\n", path, lineno);
  }
  fclose(f);
  return rc;
}

static int parse_args(ss_app *a, int argc, char **argv) {
  int opt;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":s:l:c:hV", long_opts, NULL)) != -1) {
    if (opt == 'h') {
      usage(stdout);
      exit(0);
    }
    if (opt == 'V') {
      printf("sluice-stream %s\n", sl_version());
      exit(0);
    }
    if (opt == '?') {
      if (optopt) {
        char o[3] = {'-', (char)optopt, 0};
        return fail("unknown option %s%s", o, "");
      }
      return fail("unknown option %s%s", argv[optind - 1], "");
    }
    if (opt == ':') return fail("option %s needs a value%s", argv[optind - 1], "");
    int rc = opt == 'c' ? read_config(a, optarg, 0) : apply(a, opt, optarg);
    if (rc) return rc;
  }
  if (optind < argc) return fail("unexpected argument '%s'%s", argv[optind], "");
  return 0;
}

/* Loop i > 0 is made on its own thread: a manager takes the thread that
 * creates it for its loop thread until its first poll, and hub group
 * members are added on their loop's thread. */
static int loop_setup(ss_loop *lp, char *err, size_t errlen) {
  ss_app *a = lp->app;
  int rc = 0;
  sl_mgr_opts mo = {.budget = a->budget, .reuseport = 1,
                    .max_conns = a->max_viewers * (size_t)a->nstreams + 256};
  lp->mgr = sl_mgr_new(&mo, &rc);
  if (lp->mgr == NULL) return snprintf(err, errlen, "loop %d: %s", lp->idx, sl_strerror(rc)), -1;
  for (int i = 0; i < a->nstreams; i++) {
    ss_stream *st = &a->streams[i];
    sl_hub_opts ho = {.kind = st->kind, .gop_max = a->gop_max, .max_subs = a->max_viewers,
                      .sub = a->sub, .on_event = ss_on_hub_event, .arg = lp};
    lp->hubs[i] = sl_hub_new(lp->mgr, st->name, &ho, &rc);
    if (lp->hubs[i] == NULL || (rc = sl_hub_group_add(st->group, lp->hubs[i])) != 0)
      return snprintf(err, errlen, "loop %d: stream %s: %s", lp->idx, st->name, sl_strerror(rc)), -1;
  }
  return ss_server_start(a, lp, err, errlen);
}

static void loop_teardown(ss_loop *lp) {
  if (lp->mgr == NULL) return;
  ss_server_stop(lp);
  for (int i = 0; i < lp->app->nstreams; i++)
    if (lp->hubs[i]) sl_hub_free(lp->hubs[i]);
  sl_mgr_free(lp->mgr);
  lp->mgr = NULL;
}

static atomic_int loops_ready, loops_failed;

static void *loop_main(void *arg) {
  ss_loop *lp = arg;
  char err[512];
  int ok = loop_setup(lp, err, sizeof(err)) == 0;
  if (!ok) fprintf(stderr, "sluice-stream: %s\n", err);
  if (ok) atomic_store(&lp->up, 1);
  atomic_fetch_add(ok ? &loops_ready : &loops_failed, 1);
  /* Even a loop that failed waits for quit: main may still wake it. */
  while (!atomic_load(&lp->quit)) {
    if (ok) sl_mgr_poll(lp->mgr, 500);
    else usleep(20000);
  }
  /* No manager goes before every loop has stopped polling: until then
   * another loop's statistics request may still call this one. */
  ss_app *a = lp->app;
  atomic_fetch_add(&a->loops_stopped, 1);
  while (atomic_load(&a->loops_stopped) < a->nloops - 1) usleep(1000);
  loop_teardown(lp);
  return NULL;
}

/* Set on the loop's own thread: once main's sl_mgr_call has returned it
 * touches that manager no more, and the loop may go. */
static void loop_quit(sl_mgr *m, void *arg) {
  ss_loop *lp = arg;
  (void)m;
  atomic_store(&lp->quit, 1);
}

int main(int argc, char **argv) {
  static ss_app app;
  ss_app *a = &app;
  char err[512];
  static unsigned char probe[64 << 10]; /* stdin: the bytes read to tell its codec */
  snprintf(a->listen, sizeof(a->listen), "127.0.0.1:8080");
  a->src.width = 640;
  a->src.height = 480;
  a->src.fps = 30;
  a->src.quality = 80;
  a->src.max_frame = 8u << 20;
  a->max_viewers = 1000;
  a->budget = DEFAULT_BUDGET;
  a->log_level = SL_LOG_INFO;
  ss_ops_defaults(&a->ops);
  if (parse_args(a, argc, argv) != 0) return 2;
  int edge = a->ops.origin[0] != '\0';
  if (edge && a->nstreams) {
    fail("--edge mirrors the origin's streams: no --source or --stream with it%s%s", "", "");
    return 2;
  }
  if (!edge && (a->nstreams == 0 || strcmp(a->streams[0].name, "default") != 0)) {
    if (a->nstreams == SS_MAX_STREAMS) return 2;
    memmove(&a->streams[1], &a->streams[0], (size_t)a->nstreams * sizeof(a->streams[0]));
    memset(&a->streams[0], 0, sizeof(a->streams[0]));
    snprintf(a->streams[0].name, sizeof(a->streams[0].name), "default");
    snprintf(a->streams[0].spec, sizeof(a->streams[0].spec), "testpattern");
    a->nstreams++;
  }
  if (a->sub.policy == SL_POLICY_LOSSLESS) a->allow_lossless = 1;
  if (!a->tls_cert[0] != !a->tls_key[0]) {
    fail("%s without %s: give both the certificate and its key",
         a->tls_cert[0] ? "--tls-cert" : "--tls-key", a->tls_cert[0] ? "--tls-key" : "--tls-cert");
    return 2;
  }
  sl_log_set(a->log_level, NULL, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* Room for max viewers per stream plus the API clients. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (a->threads == 0) a->threads = auto_threads();
  if (edge && a->threads > 1) {
    /* Its streams come and go at run time, with one hub each on loop 0. */
    sl_log(SL_LOG_INFO, "--edge runs one loop (--threads %d ignored)", a->threads);
    a->threads = 1;
  }
  a->nloops = a->threads;
  pthread_mutex_init(&a->recent_lock, NULL);
  pthread_mutex_init(&a->gather_lock, NULL);
  for (int l = 0; l < a->nloops; l++) {
    a->loops[l].idx = l;
    a->loops[l].app = a;
  }
  size_t max_conns = a->max_viewers * (size_t)(edge ? SS_MAX_STREAMS : a->nstreams) + 256;
  sl_mgr_opts mo = {.budget = a->budget, .max_conns = max_conns, .reuseport = a->nloops > 1};
  int rc;
  a->mgr = a->loops[0].mgr = sl_mgr_new(&mo, &rc);
  atomic_store(&a->loops[0].up, a->mgr != NULL);
  if (a->mgr == NULL) {
    fprintf(stderr, "sluice-stream: cannot start: %s\n", sl_strerror(rc));
    return 1;
  }
  a->started_ms = sl_mgr_now(a->mgr);
  int status = 1, nthreads = 0;
  sl_tls_opts to = {.cert_file = a->tls_cert, .key_file = a->tls_key};
  if (a->tls_cert[0]) {
    a->tls = sl_tls_server_new(&to, &rc);
    if (a->tls == NULL) {
      fprintf(stderr, "sluice-stream: TLS: %s\n",
              sl_tls_last_error()[0] ? sl_tls_last_error() : sl_strerror(rc));
      goto out;
    }
  }
  for (int i = 0; i < a->nstreams; i++) {
    ss_stream *st = &a->streams[i];
    st->app = a;
    char base[sizeof(st->base)];
    if (i == 0) snprintf(base, sizeof(base), "/");
    else snprintf(base, sizeof(base), "/streams/%.63s/", st->name);
    memcpy(st->base, base, sizeof(base));
    /* Each stream's codec decides its hub's kind (stdin: its first bytes,
     * read here and handed to the source). */
    ss_source_opts so = a->src;
    int codec = ss_source_codec(st->spec, &so, 5000, probe, sizeof(probe));
    st->kind = codec == SS_CODEC_H264 ? SL_KIND_H264 : SL_KIND_MJPEG;
    sl_hub_opts ho = {.kind = st->kind, .gop_max = a->gop_max, .max_subs = a->max_viewers,
                      .sub = a->sub, .on_event = ss_on_hub_event, .arg = &a->loops[0]};
    st->hub = sl_hub_new(a->mgr, st->name, &ho, &rc);
    if (st->hub == NULL) {
      fprintf(stderr, "sluice-stream: stream %s: %s\n", st->name, sl_strerror(rc));
      goto out;
    }
    if (a->nloops > 1) {
      /* Every loop's hub of the stream joins; the source publishes once. */
      st->group = sl_hub_group_new(&rc);
      if (st->group == NULL || (rc = sl_hub_group_add(st->group, st->hub)) != 0) {
        fprintf(stderr, "sluice-stream: stream %s: %s\n", st->name, sl_strerror(rc));
        goto out;
      }
      so.group = st->group;
    }
    st->src = ss_source_start(st->spec, a->mgr, st->hub, &so, err, sizeof(err));
    if (st->src == NULL) {
      fprintf(stderr, "sluice-stream: stream %s: %s\n", st->name, err);
      goto out;
    }
  }
  if (ss_server_start(a, &a->loops[0], err, sizeof(err)) != 0 ||
      (edge && ss_edge_start(a, err, sizeof(err)) != 0)) {
    fprintf(stderr, "sluice-stream: %s\n", err);
    goto out;
  }
  if (a->nloops > 1) {
    /* The other loops take no signals: they belong to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int l = 1; l < a->nloops; l++) {
      if (pthread_create(&a->loops[l].thread, NULL, loop_main, &a->loops[l]) != 0) {
        atomic_fetch_add(&loops_failed, a->nloops - l);
        atomic_fetch_add(&a->loops_stopped, a->nloops - l); /* never to run */
        break;
      }
      nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* Loop 0 runs meanwhile (the sources' first frames go out). */
    while (atomic_load(&loops_ready) + atomic_load(&loops_failed) < a->nloops - 1)
      sl_mgr_poll(a->mgr, 1);
    if (atomic_load(&loops_failed)) goto out;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (a->tls) signal(SIGHUP, on_hup);
  /* The address as bound: with port 0 (tests) the kernel picked the port,
   * and this line is how the caller learns it. */
  char host[sizeof(a->listen) + 8];
  const char *colon = strrchr(a->listen, ':');
  snprintf(host, sizeof(host), "%.*s:%d", colon ? (int)(colon - a->listen) : 0, a->listen,
           sl_conn_local_port(a->loops[0].listener));
  const char *scheme = a->tls ? "https" : "http";
  printf("sluice-stream %s: serving %s://%s/  (dashboard: %s://%s/dashboard, "
         "metrics: /metrics)\n", sl_version(), scheme, host, scheme, host);
  if (a->nloops > 1) printf("  %d loops on %d threads, one listener each\n", a->nloops, a->nloops);
  for (int i = 0; i < a->nstreams; i++)
    printf("  stream %-10s %s%s  <- %s\n", a->streams[i].name, a->streams[i].base,
           ss_source_codec_of(a->streams[i].src) == SS_CODEC_H264 ? "stream.h264"
                                                                  : "stream.mjpg",
           ss_source_describe(a->streams[i].src));
  if (edge) printf("  edge of %s: its streams appear here as it lists them\n", a->ops.origin);
  fflush(stdout);
  int sig_seen = 0;
  for (;;) {
    sl_mgr_poll(a->mgr, atomic_load(&a->ops.draining) ? 50 : 500);
    int sig = stop_signal;
    stop_signal = 0;
    if (sig) sig_seen = sig;
    if (ss_drain_step(a, sig)) break;
    if (reload_signal) {
      /* A renewed certificate: new handshakes use it, open connections
       * keep theirs. A bad file changes nothing. */
      reload_signal = 0;
      if (sl_tls_reload(a->tls, &to) == 0)
        sl_log(SL_LOG_INFO, "SIGHUP: reloaded TLS certificate %s and key %s", a->tls_cert,
               a->tls_key);
      else
        sl_log(SL_LOG_ERROR, "SIGHUP: TLS reload failed, keeping the previous certificate: %s",
               sl_tls_last_error());
    }
  }
  sl_log(SL_LOG_INFO, "signal %d: shutting down", sig_seen);
  status = 0;

out:
  ss_edge_stop(a);
  for (int i = 0; i < a->nstreams; i++) {
    ss_source_stop(a->streams[i].src);
    a->streams[i].src = NULL;
  }
  /* Nothing publishes any more: stop the other loops (each frees its own
   * hubs and manager), then loop 0. */
  for (int l = 1; l <= nthreads; l++)
    if (!atomic_load(&a->loops[l].up) || sl_mgr_call(a->loops[l].mgr, loop_quit, &a->loops[l]))
      atomic_store(&a->loops[l].quit, 1); /* seen within its poll's 500 ms */
  for (int l = 1; l <= nthreads; l++) pthread_join(a->loops[l].thread, NULL);
  ss_view_free_pending(a);
  for (int i = 0; i < a->nstreams; i++)
    if (a->streams[i].hub) sl_hub_free(a->streams[i].hub);
  for (int i = 0; i < a->nstreams; i++) sl_hub_group_free(a->streams[i].group);
  if (a->mgr) ss_server_stop(&a->loops[0]);
  sl_mgr_free(a->mgr);
  sl_tls_ctx_free(a->tls);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  if (status == 0) {
    printf("sluice-stream: stopped; library memory now %zu bytes (peak %zu)\n", ms.total, ms.peak);
    if (ms.total != 0) status = 3;
  }
  free(source_user_store);
  return status;
}

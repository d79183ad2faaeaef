#!/usr/bin/env python3
"""Fan-out, memory and HTTP benchmarks of sluice, side by side with the
machine's loopback limit, GStreamer's tcpserversink nginx and h2o, in one run.

Prints Markdown tables (each with the exact commands) and, with --json FILE,
writes every raw number. bench/run.sh runs it; it needs the build dir's
bench_fanout_server, bench_http_server, sluice-stream and loadgen (run.sh
builds them). Loopback only; every server it starts is stopped at the end.

  bench/fanout.py [--build DIR] [--rounds N] [--quick] [--json FILE] [SECTION...]

Sections (all by default, in this order):
  throughput  fan-out of 100 KB frames, readers reading as fast as they can:
              the loopback limit (one process, plain blocking send(), the
              same readers), sluice (bench_fanout_server --demand: a new
              frame whenever a reader ran dry) and GStreamer tcpserversink
              (fakesrc as fast as it goes), to 10/100/1000 readers,
              interleaved rounds; ratios to the limit of the same round.
  fanout30    a 100 KB, 30 fps stream (bench_fanout_server) to 10/100/1000
              healthy readers, and 1000 readers of which 500 are stalled
              (with its 500-healthy control): delivered MB/s, server CPU,
              memory (held peak, RSS), frame gap p99 per reader, lag.
  memory      held bytes and RSS per viewer: 1000 connected viewers of an
              idle stream (one frame, then nothing) and of a 30 fps stream.
  stalled     200 stalled viewers + 10 healthy, 30 fps x 100 KB, for
              STALL_SECONDS (30; 60 with --long): growth of RSS and held
              bytes per stalled viewer per minute (least squares).
  http        wrk -t1 -c50 against GET /hello (13-byte body) on
              bench_http_server, nginx (1 worker, return 200) and h2o
              (1 thread, file.file), servers pinned to CPU 0 and wrk to
              CPU 1; keep-alive and pipelined 16 deep, interleaved
              rounds: req/s, ratios, server CPU per request and CPU %.
  http2       the same with two workers each: bench_http_server --threads 2
              (two loops on SO_REUSEPORT), nginx worker_processes 2, h2o
              num-threads 2, wrk -t2 -c100, nothing pinned.
  mixed       sluice-stream (1280x720 test pattern, about 100 KB JPEGs)
              with 20 healthy viewers alone (control), then with stalled,
              slow, freezing, WebSocket viewers, slowloris, churn and a
              snapshot flood: the healthy viewers' fps and gap p99 next to
              the control's.
  lowat       TCP_NOTSENT_LOWAT: the automatic value against the old fixed
              128 KiB and 16 KiB, 1000 fast readers of 100 KB frames at
              30 fps and 10 readers at 50 KB/s, interleaved rounds: server
              CPU and its ratio to the automatic value's in the same round.
  loops       one loop against two (bench_fanout_server --threads 1 / 2:
              SO_REUSEPORT and a hub group), 1000 readers of a 100 KB
              stream faster than they can take it: MB/s and server CPU,
              ratios per round.

The GStreamer server is this script itself in a child process (--gst-serve):
libgstreamer through ctypes runs "fakesrc ! valve ! tcpserversink", with the
valve closed until every reader is connected (tcpserversink listens with a
backlog of 5 and accepts slowly while it streams; readers are paced at
500 connects/s), then opened for the measurement. GST_SINK_PROPS adds
tcpserversink properties (e.g. "recover-policy=latest units-soft-max=2").
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FRAME = 102400
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
procs = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- processes ------------------------------------------------------------

def start_server(cmd, port_line=True, **kw):
    cmd = [str(c) for c in cmd]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **kw)
    procs.append(p)
    port = None
    if port_line:
        line = p.stdout.readline()
        m = re.match(r"port (\d+)", line or "")
        if not m:
            stop(p)
            raise RuntimeError("%s did not start: %r" % (cmd[0], line))
        port = int(m.group(1))
    return p, port


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in procs:
        procs.remove(p)


def stop_all():
    for p in list(procs):
        stop(p)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def shq(cmd):
    return " ".join(c if re.match(r"^[\w@%+=:,./-]+$", c) else "'%s'" % c for c in cmd)


class Bench:
    def __init__(self, a):
        self.a = a
        b = a.build
        self.srv = os.path.join(b, "bench_fanout_server")
        self.http_srv = os.path.join(b, "bench_http_server")
        self.ss = os.path.join(b, "sluice-stream")
        self.lg = os.path.join(b, "loadgen")
        self.raw = {}
        self.commands = {}

    def rel(self, path):
        return os.path.relpath(path, ROOT) if path.startswith(ROOT) else path

    def loadgen(self, args, on_connected=None, timeout=120):
        cmd = [self.lg] + [str(x) for x in args] + ["--json"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        err_lines = []

        def pump():
            for line in p.stderr:
                err_lines.append(line)
                if on_connected and line.startswith("loadgen: connected"):
                    on_connected()
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        killer = threading.Timer(timeout, p.kill)  # loadgen is bounded; this is a safety net
        killer.start()
        out = p.stdout.read()
        p.wait()
        killer.cancel()
        t.join(2)
        procs.remove(p)
        if p.returncode != 0:
            raise RuntimeError("loadgen failed (%s): %s" % (p.returncode, "".join(err_lines)[-2000:]))
        d = json.loads(out)
        d["_table"] = "".join(l for l in err_lines if not l.startswith("loadgen: connected"))
        d["_cmd"] = shq([self.rel(self.lg)] + [str(x) for x in args] + ["--json"])
        return d


def rss_kb(pid, key="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(x, nd=1):
    if x is None:
        return "-"
    return ("%%.%df" % nd) % x


# ---- GStreamer child (ctypes; no development package needed) ------------

def gst_serve(port, size):
    gst = ctypes.CDLL("libgstreamer-1.0.so.0")
    gobj = ctypes.CDLL("libgobject-2.0.so.0")
    gst.gst_init(None, None)
    gst.gst_parse_launch.restype = ctypes.c_void_p
    gst.gst_parse_launch.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    gst.gst_element_set_state.argtypes = [ctypes.c_void_p, ctypes.c_int]
    gst.gst_bin_get_by_name.restype = ctypes.c_void_p
    gst.gst_bin_get_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    desc = ("fakesrc sizetype=fixed sizemax=%d ! valve name=v drop=true ! "
            "tcpserversink host=127.0.0.1 port=%d sync=false %s" % (size, port, os.environ.get("GST_SINK_PROPS", "")))
    p = gst.gst_parse_launch(desc.encode(), None)
    if not p:
        print("error", flush=True)
        return 1
    v = gst.gst_bin_get_by_name(p, b"v")
    gst.gst_element_set_state(p, 4)  # PLAYING
    for _ in range(200):  # wait until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    print("port %d" % port, flush=True)
    sys.stdin.readline()  # "go": the readers are in
    gobj.g_object_set(ctypes.c_void_p(v), b"drop", ctypes.c_int(0), ctypes.c_void_p(None))
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    sys.stdin.readline()
    gst.gst_element_set_state(p, 1)
    return 0


GST_DESC = "fakesrc sizetype=fixed sizemax=102400 ! tcpserversink host=127.0.0.1 port=P sync=false"


def have_gst():
    try:
        ctypes.CDLL("libgstreamer-1.0.so.0")
        return subprocess.run(["gst-inspect-1.0", "tcpserversink"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0
    except (OSError, FileNotFoundError):
        return False


# ---- throughput -----------------------------------------------------------

def throughput(b):
    a = b.a
    D, W = (2, 0.5) if a.quick else (3, 1)
    rounds = a.rounds
    gst_ok = have_gst()
    ns = [10, 100] if a.quick else [10, 100, 1000]
    res = {}
    common = ["--duration", D, "--warmup", W, "--connect-timeout", 10]

    def one(kind, n):
        if kind == "plain":
            p, port = start_server([b.srv, "--mode", "plain", "--size", FRAME])
            b.commands["limit"] = shq([b.rel(b.srv), "--mode", "plain", "--size", str(FRAME)]) + \
                " ; loadgen --raw-url tcp://127.0.0.1:PORT --raw N" + " ".join([""] + [str(x) for x in common])
            try:
                d = b.loadgen(["--raw-url", "tcp://127.0.0.1:%d" % port, "--raw", n, "--server-pid", p.pid] + common)
            finally:
                stop(p)
            mem = d["server"]["hwm_kb"]
        elif kind == "sluice":
            p, port = start_server([b.srv, "--demand", "--size", FRAME])
            b.commands["sluice"] = shq([b.rel(b.srv), "--demand", "--size", str(FRAME)]) + \
                " ; loadgen --raw-url http://127.0.0.1:PORT/stream.raw --raw N --stats-url http://127.0.0.1:PORT/api/stats" + \
                " ".join([""] + [str(x) for x in common])
            try:
                d = b.loadgen(["--raw-url", "http://127.0.0.1:%d/stream.raw" % port, "--raw", n,
                               "--server-pid", p.pid, "--stats-url", "http://127.0.0.1:%d/api/stats" % port] + common)
            finally:
                stop(p)
            mem = d["server"]["hwm_kb"]
        else:
            port = free_port()
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--gst-serve", str(port), str(FRAME)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(p)
            line = p.stdout.readline()
            if not line.startswith("port"):
                stop(p)
                raise RuntimeError("gst child: %r" % line)
            b.commands["gst"] = ("the valve-gated " + GST_DESC + " (fanout.py --gst-serve); loadgen --raw-url "
                                 "tcp://127.0.0.1:P --raw N --connect-inflight 2 --connect-rate 500" +
                                 " ".join([""] + [str(x) for x in common]))

            def go():
                try:
                    p.stdin.write("go\n")
                    p.stdin.flush()
                except OSError:
                    pass
            try:
                d = b.loadgen(["--raw-url", "tcp://127.0.0.1:%d" % port, "--raw", n, "--server-pid", p.pid,
                               "--connect-inflight", 2, "--connect-rate", 500] + common, on_connected=go)
            finally:
                stop(p)
            mem = d["server"]["hwm_kb"]
        r = d["classes"]["raw"]
        out = {"mbps": r["mb_per_s"], "reader_min": r["mb_per_s_reader_min"],
               "reader_med": r["mb_per_s_reader_median"], "cpu": d["server"]["cpu_pct"],
               "hwm_kb": mem, "lg_cpu": d["loadgen_cpu_pct"], "connect_s": d["connect_s"]}
        st = d["server"]["end"].get("stats")
        if st:
            out["held_peak"] = st["memory"]["peak"]
            out["frames_in"] = st["hub"]["frames_in"]
        return out

    kinds = ["plain", "sluice"] + (["gst"] if gst_ok else [])
    for n in ns:
        res[n] = []
        for r in range(rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            row = {}
            for k in order:
                row[k] = one(k, n)
                log("throughput n=%d round %d %s: %.0f MB/s" % (n, r + 1, k, row[k]["mbps"]))
            res[n].append(row)
    b.raw["throughput"] = res

    print("\n### Fan-out throughput: 100 KB frames, readers as fast as they can\n")
    print("Delivered MB/s summed over the readers (loadgen raw readers, one epoll process) in a %g s window, "
          "per round; ratio = that / the limit measured in the same round. Rounds interleave the servers "
          "(order rotated each round).\n" % D)
    print("| readers | round | limit MB/s | sluice MB/s | sluice / limit | GStreamer MB/s | GStreamer / limit | "
          "sluice / GStreamer |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    for n in ns:
        rs, rg, sg = [], [], []
        for i, row in enumerate(res[n]):
            L = row["plain"]["mbps"]
            s = row["sluice"]["mbps"]
            g = row["gst"]["mbps"] if "gst" in row else None
            rs.append(s / L)
            if g:
                rg.append(g / L)
                sg.append(s / g)
            print("| %d | %d | %.0f | %.0f | %.2f | %s | %s | %s |" % (
                n, i + 1, L, s, s / L, fmt(g, 0), fmt(g / L if g else None, 2), fmt(s / g if g else None, 2)))
        summary.append((n, med(rs), min(rs), max(rs), med(rg), min(rg) if rg else None, max(rg) if rg else None,
                        med(sg)))
    print("\n| readers | sluice / limit: median (min-max) | GStreamer / limit: median (min-max) | sluice / GStreamer median |")
    print("|---:|---|---|---:|")
    for n, m, lo, hi, gm, glo, ghi, sg in summary:
        print("| %d | **%.2f** (%.2f-%.2f) | %s (%s-%s) | %s |" % (n, m, lo, hi, fmt(gm, 2), fmt(glo, 2), fmt(ghi, 2),
                                                                  fmt(sg, 2)))
    print("\nServer cost per round (medians): CPU % of one core (process total, from /proc/PID/stat; "
          "loopback TCP work done in the sender's context counts here), peak RSS, slowest reader:\n")
    print("| readers | limit CPU % | sluice CPU % | GStreamer CPU % | sluice peak RSS MB / held peak MB | "
          "GStreamer peak RSS MB | slowest reader MB/s: limit / sluice / GStreamer |")
    print("|---:|---:|---:|---:|---|---:|---|")
    for n in ns:
        rows = res[n]
        g = lambda k, f: med([r[k][f] for r in rows if k in r])
        print("| %d | %s | %s | %s | %s / %s | %s | %s / %s / %s |" % (
            n, fmt(g("plain", "cpu"), 0), fmt(g("sluice", "cpu"), 0), fmt(g("gst", "cpu"), 0),
            fmt(g("sluice", "hwm_kb") / 1024, 1), fmt((g("sluice", "held_peak") or 0) / 1e6, 2),
            fmt((g("gst", "hwm_kb") or 0) / 1024 if gst_ok else None, 1),
            fmt(g("plain", "reader_min"), 1), fmt(g("sluice", "reader_min"), 1), fmt(g("gst", "reader_min"), 1)))
    print("\nCommands (N = readers, PORT printed by the server):\n")
    for k in ("limit", "sluice", "gst"):
        if k in b.commands:
            print("- %s: `%s`" % (k, b.commands[k]))


# ---- 30 fps fan-out -------------------------------------------------------

def fanout30(b):
    a = b.a
    D = 5 if a.quick else 10
    cases = [(10, 0), (100, 0), (1000, 0), (500, 0), (500, 500)]
    if a.quick:
        cases = [(10, 0), (100, 0), (100, 100)]
    rows = []
    for healthy, stalled in cases:
        p, port = start_server([b.srv, "--fps", "30", "--size", FRAME])
        base = "http://127.0.0.1:%d" % port
        args = ["--url", base + "/stream.mjpg", "--healthy", healthy, "--duration", D, "--warmup", 2,
                "--server-pid", p.pid, "--stats-url", base + "/api/stats"]
        if stalled:
            args += ["--stalled", stalled]
        try:
            d = b.loadgen(args)
        finally:
            stop(p)
        h = d["classes"]["healthy"]
        st = d["server"]["end"]["stats"]
        rows.append(dict(healthy=healthy, stalled=stalled, mbps=h["mb_per_s"], cpu=d["server"]["cpu_pct"],
                         held_peak=st["memory"]["peak"], held=st["memory"]["held"], rss_kb=d["server"]["end"]["rss_kb"],
                         hwm_kb=d["server"]["hwm_kb"], fps_min=h["fps_per_conn_min"], fps_mean=h["fps_per_conn_mean"],
                         gap_p50=h["gap_p50_ms"], gap_p99=h["gap_p99_ms"], gap_p99_med=h["gap_p99_per_reader_median_ms"],
                         gap_p99_max=h["gap_p99_per_reader_max_ms"], lag_p99=h["lag_frames_p99"],
                         lag_max=h["lag_frames_max"], errors=h["errors"] + h["closed"],
                         stalled_closed=d["classes"].get("stalled", {}).get("closed"),
                         drops=st["hub"]["drops"]["replaced"], lg_cpu=d["loadgen_cpu_pct"],
                         cmd=shq([b.rel(b.srv), "--fps", "30", "--size", str(FRAME)]) + " ; " + d["_cmd"]))
        log("fanout30 %d+%d: %.0f MB/s, fps min %.1f, gap p99 %.1f" % (healthy, stalled, h["mb_per_s"],
                                                                      h["fps_per_conn_min"], h["gap_p99_ms"] or -1))
    b.raw["fanout30"] = rows
    print("\n### Fan-out of a 100 KB, 30 fps stream (bench_fanout_server, policy latest)\n")
    print("%d s window after 2 s warm-up. MB/s = delivered to the healthy readers; CPU = server process, %% of one "
          "core; held peak = the library's exact held-bytes peak (memory.peak); gap = time between part starts, "
          "p99 of each reader (median and worst reader) and pooled p50; lag = frames behind the newest frame "
          "any reader has seen.\n" % D)
    print("| readers | MB/s | server CPU % | held peak MB | RSS MB (peak) | fps per reader min / mean | "
          "gap p50 ms | gap p99 ms per reader: median / worst | lag p99 (max) frames | dropped frames |")
    print("|---|---:|---:|---:|---|---|---:|---|---|---:|")
    for r in rows:
        name = "%d" % r["healthy"] if not r["stalled"] else "%d healthy + %d stalled" % (r["healthy"], r["stalled"])
        if r["healthy"] == 500 and not r["stalled"]:
            name = "500 (control for the next row)"
        print("| %s | %.0f | %.0f | %.2f | %.1f (%.1f) | %.1f / %.1f | %s | %s / %s | %s (%s) | %d |" % (
            name, r["mbps"], r["cpu"], r["held_peak"] / 1e6, r["rss_kb"] / 1024, r["hwm_kb"] / 1024, r["fps_min"],
            r["fps_mean"], fmt(r["gap_p50"]), fmt(r["gap_p99_med"]), fmt(r["gap_p99_max"]), fmt(r["lag_p99"], 0),
            fmt(r["lag_max"], 0), r["drops"]))
    print("\nCommands:\n")
    for r in rows:
        print("- `%s`" % r["cmd"])


# ---- memory per viewer ------------------------------------------------------

def memory(b):
    a = b.a
    n = 200 if a.quick else 1000
    rows = []
    for fps in (0, 30):
        p, port = start_server([b.srv, "--fps", str(fps), "--size", FRAME])
        base = "http://127.0.0.1:%d" % port
        time.sleep(0.3)
        args = ["--url", base + "/stream.mjpg", "--healthy", n, "--duration", 3, "--warmup", 2,
                "--server-pid", p.pid, "--stats-url", base + "/api/stats"]
        try:
            d = b.loadgen(args)
        finally:
            stop(p)
        sv = d["server"]
        b0, b1 = sv["before"], sv["end"]
        dh = b1["stats"]["memory"]["held"] - b0["stats"]["memory"]["held"]
        dl = b1["stats"]["memory"]["lib_total"] - b0["stats"]["memory"]["lib_total"]
        dr = (b1["rss_kb"] - b0["rss_kb"]) * 1024
        rows.append(dict(fps=fps, n=n, held_per=dh / n, lib_per=dl / n, rss_per=dr / n, held0=b0["stats"]["memory"]["held"],
                         held1=b1["stats"]["memory"]["held"], rss0=b0["rss_kb"], rss1=b1["rss_kb"],
                         frames_held=b1["stats"]["hub"]["frames_held"],
                         cmd=shq([b.rel(b.srv), "--fps", str(fps), "--size", str(FRAME)]) + " ; " + d["_cmd"]))
        log("memory fps=%d: held/viewer %.0f B, rss/viewer %.0f B" % (fps, dh / n, dr / n))
    b.raw["memory"] = rows
    print("\n### Memory per viewer (%d connected healthy MJPEG viewers, 100 KB frames)\n" % n)
    print("Before = the server with its stream and no viewer; after = %d viewers connected and reading. "
          "held = the manager's exact held bytes (shared frames once + owned chunks + input buffers); "
          "library total = every byte the library allocated (held + connection, segment and subscriber "
          "bookkeeping); RSS = the whole process. Kernel socket buffers are not in any of them.\n" % n)
    print("| stream | held before -> after | held per viewer | library total per viewer | RSS before -> after MB | RSS per viewer | frames alive |")
    print("|---|---|---:|---:|---|---:|---:|")
    for r in rows:
        print("| %s | %d -> %d B | %.0f B | %.0f B | %.1f -> %.1f | %.1f KB | %d |" % (
            "idle (1 frame, then none)" if r["fps"] == 0 else "30 fps", r["held0"], r["held1"], r["held_per"],
            r["lib_per"], r["rss0"] / 1024, r["rss1"] / 1024, r["rss_per"] / 1024, r["frames_held"]))
    print("\nCommands:\n")
    for r in rows:
        print("- `%s`" % r["cmd"])


# ---- stalled growth ---------------------------------------------------------

def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


def tcp_mem_pages():
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    m = re.search(r"mem (\d+)", line)
                    return int(m.group(1)) if m else None
    except OSError:
        return None


def stalled(b):
    a = b.a
    secs = 60 if a.long else (15 if a.quick else 30)
    n = 200
    p, port = start_server([b.srv, "--fps", "30", "--size", FRAME])
    base = "http://127.0.0.1:%d" % port
    args = ["--url", base + "/stream.mjpg", "--healthy", 10, "--stalled", n, "--duration", secs, "--warmup", 2,
            "--server-pid", p.pid, "--stats-url", base + "/api/stats", "--sample-ms", 2000]
    tcp0 = tcp_mem_pages()
    try:
        d = b.loadgen(args, timeout=secs + 120)
        tcp1 = tcp_mem_pages()
    finally:
        stop(p)
    sm = [s for s in d["server"]["samples"] if s.get("stats")]
    xs = [s["t_s"] / 60 for s in sm]
    rss = [s["rss_kb"] * 1024 for s in sm]
    held = [s["stats"]["memory"]["held"] for s in sm]
    lib = [s["stats"]["memory"]["lib_total"] for s in sm]
    h = d["classes"]["healthy"]
    st = d["classes"]["stalled"]
    r = dict(secs=secs, n=n, rss_slope=slope(xs, rss), held_slope=slope(xs, held), lib_slope=slope(xs, lib),
             rss_first=rss[0] if rss else None, rss_last=rss[-1] if rss else None, held_first=held[0] if held else None,
             held_last=held[-1] if held else None, held_max=max(held) if held else None,
             peak=d["server"]["end"]["stats"]["memory"]["peak"], fps_min=h["fps_per_conn_min"], gap_p99=h["gap_p99_ms"],
             stalled_closed=st["closed"], tcp0=tcp0, tcp1=tcp1, samples=len(sm),
             cpu=d["server"]["cpu_pct"],
             cmd=shq([b.rel(b.srv), "--fps", "30", "--size", str(FRAME)]) + " ; " + d["_cmd"])
    b.raw["stalled"] = r
    per = lambda v: v / n if v is not None else None
    print("\n### Memory growth per stalled viewer (%d stalled + 10 healthy, 30 fps x 100 KB, %d s)\n" % (n, secs))
    print("Sampled every 2 s over the window (%d samples); growth = least-squares slope, per stalled viewer "
          "per minute. The stalled viewers set SO_RCVBUF 4 KB, send the request and never read.\n" % r["samples"])
    print("| measure | first sample | last sample | slope per stalled viewer per minute |")
    print("|---|---:|---:|---:|")
    print("| server RSS | %.2f MB | %.2f MB | %s B |" % (r["rss_first"] / 1e6, r["rss_last"] / 1e6, fmt(per(r["rss_slope"]), 0)))
    print("| held bytes (exact) | %.2f MB | %.2f MB | %s B |" % (r["held_first"] / 1e6, r["held_last"] / 1e6,
                                                           fmt(per(r["held_slope"]), 1)))
    print("| library total (exact) | %.2f MB | %.2f MB | %s B |" % (lib[0] / 1e6, lib[-1] / 1e6, fmt(per(r["lib_slope"]), 1)))
    print("\nHeld peak %.2f MB; healthy viewers: fps min %.1f, gap p99 %s ms; server CPU %.0f %%; stalled viewers "
          "closed by the server in the window: %d (stall_ms for stream viewers is 300 s). Kernel TCP memory "
          "(/proc/net/sockstat, all sockets): %s -> %s pages.\n" % (
              r["peak"] / 1e6, r["fps_min"], fmt(r["gap_p99"]), r["cpu"], r["stalled_closed"], r["tcp0"], r["tcp1"]))
    print("Command: `%s`" % r["cmd"])


# ---- HTTP vs nginx and h2o -------------------------------------------------

PIPELINE_LUA = """-- wrk script: DEPTH pipelined GET /hello in each write (wrk counts responses).
init = function(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, "/hello") end
  req = table.concat(r)
end
request = function() return req end
"""


def proc_ticks(pids, user_only=False):
    t = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                v = f.read().rsplit(")", 1)[1].split()
            t += int(v[11]) + (0 if user_only else int(v[12]))
        except (OSError, IndexError, ValueError):
            pass
    return t


def proc_children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def http(b):
    """GET /hello on sluice, nginx and h2o, each with one worker, pinned to
    CPU 0 while wrk runs pinned to CPU 1 (when the machine has two CPUs or
    more): plain keep-alive and pipelined 16 deep, interleaved rounds."""
    http_workers(b, 1)


def http2(b):
    """The same with two workers each: sluice with two loops (bench_http_server
    --threads 2, SO_REUSEPORT), nginx worker_processes 2, h2o num-threads 2;
    wrk -t2 -c100; nothing pinned (servers and client share every CPU)."""
    http_workers(b, 2)


def http_workers(b, workers):
    a = b.a
    if not shutil.which("wrk"):
        print("\n### HTTP: wrk not installed, skipped\n")
        return
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    h2o = shutil.which("h2o")
    D = 2 if a.quick else 3
    rounds = 3 if a.quick else 5
    DEPTH = 16
    ncpu = os.cpu_count() or 1
    pin = workers == 1 and ncpu >= 2 and shutil.which("taskset") is not None
    srv_pin = ["taskset", "-c", "0"] if pin else []
    cli_pin = ["taskset", "-c", "1"] if pin else []
    tmp = tempfile.mkdtemp(prefix="sluice-http-")
    lua = os.path.join(tmp, "pipeline.lua")
    with open(lua, "w") as f:
        f.write(PIPELINE_LUA)
    nport, hport = free_port(), free_port()
    nconf = os.path.join(tmp, "nginx.conf")
    with open(nconf, "w") as f:
        f.write("""worker_processes %d;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:%d;
    location = /hello { default_type text/plain; return 200 "Hello, world!"; }
  }
}
""" % (workers, tmp, tmp, nport))
    # h2o 2.2 has no "return" directive without mruby: it serves the same
    # 13 bytes from a file (file.file), which it answers from its own file
    # descriptor cache with a pread per response.
    with open(os.path.join(tmp, "hello.txt"), "w") as f:
        f.write("Hello, world!")
    hconf = os.path.join(tmp, "h2o.conf")
    try:
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        user = None
    with open(hconf, "w") as f:
        f.write("""%snum-threads: %d
listen:
  host: 127.0.0.1
  port: %d
access-log: /dev/null
error-log: %s/h2o-error.log
pid-file: %s/h2o.pid
http1-request-timeout: 600
hosts:
  default:
    paths:
      /hello:
        file.file: %s/hello.txt
        file.send-compressed: OFF
""" % ("user: %s\n" % user if user and os.getuid() == 0 else "", workers, hport, tmp, tmp, tmp))
    servers = {}
    cmds = {}
    targs = ["--threads", str(workers)] if workers > 1 else []
    sp, sport = start_server(srv_pin + [b.http_srv] + targs)
    servers["sluice"] = (sp, sport)
    cmds["sluice"] = srv_pin + [b.rel(b.http_srv)] + targs
    if nginx:
        p = subprocess.Popen(srv_pin + [nginx, "-p", tmp, "-c", nconf], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        servers["nginx"] = (p, nport)
        cmds["nginx"] = srv_pin + ["nginx", "-p", "TMP", "-c", "TMP/nginx.conf"]
    if h2o:
        p = subprocess.Popen(srv_pin + [h2o, "-c", hconf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        servers["h2o"] = (p, hport)
        cmds["h2o"] = srv_pin + ["h2o", "-c", "TMP/h2o.conf"]
    for k, (p, port) in list(servers.items()):
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            log("http: %s did not start" % k)
            del servers[k]
    names = [k for k in ("sluice", "nginx", "h2o") if k in servers]

    def server_pids(k):
        # The process and its children (nginx: master + worker; h2o: its
        # threads are in its own /proc/PID/stat, plus the crash handler).
        p = servers[k][0]
        return [p.pid] + proc_children(p.pid)

    def wrk(k, pipelined):
        url = "http://127.0.0.1:%d/hello" % servers[k][1]
        cmd = cli_pin + ["wrk", "-t%d" % workers, "-c%d" % (50 * workers), "-d%ds" % D]
        if pipelined:
            cmd += ["-s", lua, url, "--", str(DEPTH)]
        else:
            cmd += [url]
        pids = server_pids(k)
        t0, u0 = proc_ticks(pids), proc_ticks(pids, True)
        w0 = time.time()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        o = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        wall = time.time() - w0
        cpu_s = (proc_ticks(pids) - t0) / os.sysconf("SC_CLK_TCK")
        user_s = (proc_ticks(pids, True) - u0) / os.sysconf("SC_CLK_TCK")
        m = re.search(r"Requests/sec:\s+([\d.]+)", o)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
        errs = re.search(r"Socket errors: (.*)", o)
        rps = float(m.group(1)) if m else None
        return {"rps": rps, "bad": int(bad.group(1)) if bad else 0, "errors": errs.group(1) if errs else "",
                "us": cpu_s / (rps * D) * 1e6 if rps else None, "cpu": 100.0 * cpu_s / D,
                "user_us": user_s / (rps * D) * 1e6 if rps else None,
                "wrk_cpu": 100.0 * (ru.ru_utime + ru.ru_stime) / wall}

    def head(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        r = s.recv(4096)
        s.close()
        return len(r)
    sizes = {k: head(servers[k][1]) for k in names}
    variants = [("plain", False), ("pipelined", True)]
    res = {v: [] for v, _ in variants}
    try:
        for k in names:  # warm-up
            wrk(k, False)
        for r in range(rounds):
            for v, pipe in variants:
                row = {}
                order = names[r % len(names):] + names[:r % len(names)]
                for k in order:
                    row[k] = wrk(k, pipe)
                res[v].append(row)
                log("http %s round %d: %s" % (v, r + 1, row))
    finally:
        for k in names:
            stop(servers[k][0])
        shutil.rmtree(tmp, ignore_errors=True)
    key = "http" if workers == 1 else "http%d" % workers
    b.raw[key] = {"rounds": res, "response_bytes": sizes, "pinned": pin, "depth": DEPTH}
    ver = {}
    if nginx:
        ver["nginx"] = subprocess.run([nginx, "-v"], stderr=subprocess.PIPE, text=True).stderr.strip().split("/")[-1]
    if h2o:
        ver["h2o"] = subprocess.run([h2o, "--version"], stdout=subprocess.PIPE, text=True).stdout.split()[2]
    print("\n### Small HTTP responses: sluice, nginx and h2o, %s, wrk -t%d -c%d -d%ds, GET /hello "
          "(13-byte body), keep-alive\n" % ("one worker each" if workers == 1 else "%d workers each (sluice: %d loops)" % (workers, workers), workers, 50 * workers, D))
    print("%s. Each round runs every server once per variant (the order rotates). nginx %s: `worker_processes %d`, "
          "`return 200 \"Hello, world!\"`, access_log off, keepalive_requests raised; h2o %s: `num-threads: %d`, "
          "`file.file` of a 13-byte file, access log to /dev/null. Whole response: %s bytes.\n" % (
              "Servers pinned to CPU 0 and wrk to CPU 1 (taskset)" if pin else
              ("Not pinned (one CPU)" if workers == 1 else "Not pinned: servers and wrk share all %d CPUs" % ncpu),
              ver.get("nginx", "(not installed)"), workers, ver.get("h2o", "(not installed)"), workers,
              ", ".join("%s %d" % (k, sizes[k]) for k in names)))
    print("CPU us/req = the server's CPU time (utime + stime from /proc/PID/stat, with its children) during the run / "
          "requests answered; server CPU % = that time / the run's length (100 % = its core saturated); wrk CPU % "
          "likewise for the client. When the server's core is not saturated, the client sets the pace: requests/s "
          "then says little about the server, and CPU per request is the fair comparison.\n")
    summary = {}
    for v, _ in variants:
        rows = res[v]
        print("#### %s\n" % ("Keep-alive, one request at a time per connection" if v == "plain"
                             else "Pipelined, %d requests per write (`wrk -s pipeline.lua -- %d`)" % (DEPTH, DEPTH)))
        hdr = ["round"] + ["%s req/s" % k for k in names] + ["sluice / %s" % k for k in names[1:]] + \
              ["%s us/req" % k for k in names] + ["%s CPU %%" % k for k in names] + ["wrk CPU % (sluice run)"]
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---:|" * len(hdr))
        for i, row in enumerate(rows):
            cells = [str(i + 1)] + [fmt(row[k]["rps"], 0) for k in names]
            for k in names[1:]:
                s, o = row["sluice"]["rps"], row[k]["rps"]
                cells.append(fmt(s / o if s and o else None, 2))
            cells += [fmt(row[k]["us"], 2) for k in names] + [fmt(row[k]["cpu"], 0) for k in names]
            cells.append(fmt(row["sluice"]["wrk_cpu"], 0))
            print("| " + " | ".join(cells) + " |")
        s = {}
        for k in names:
            s[k] = {"rps": med([r[k]["rps"] for r in rows]), "us": med([r[k]["us"] for r in rows]),
                    "user_us": med([r[k]["user_us"] for r in rows]),
                    "cpu": med([r[k]["cpu"] for r in rows]), "wrk_cpu": med([r[k]["wrk_cpu"] for r in rows])}
        for k in names[1:]:
            rr = [r["sluice"]["rps"] / r[k]["rps"] for r in rows if r["sluice"]["rps"] and r[k]["rps"]]
            cr = [r[k]["us"] / r["sluice"]["us"] for r in rows if r["sluice"]["us"] and r[k]["us"]]
            s["vs_" + k] = {"rps": med(rr), "rps_min": min(rr) if rr else None, "rps_max": max(rr) if rr else None,
                           "cpu": med(cr)}
        summary[v] = s
        bad = sum(r[k]["bad"] for r in rows for k in names)
        errs = sorted({r[k]["errors"] for r in rows for k in names if r[k]["errors"]})
        print("\nMedians: " + "; ".join("%s %s req/s, %s us/req (of which user space %s), CPU %s %%, wrk %s %%" % (
            k, fmt(s[k]["rps"], 0), fmt(s[k]["us"], 2), fmt(s[k]["user_us"], 2), fmt(s[k]["cpu"], 0),
            fmt(s[k]["wrk_cpu"], 0)) for k in names) + ".")
        for k in names[1:]:
            x = s["vs_" + k]
            print("sluice / %s: **%s** requests/s (min %s, max %s); %s CPU per request / sluice's: **%s**." % (
                k, fmt(x["rps"], 2), fmt(x["rps_min"], 2), fmt(x["rps_max"], 2), k, fmt(x["cpu"], 2)))
        print("Non-2xx responses: %d.%s\n" % (bad, (" Socket errors: " + "; ".join(errs)) if errs else ""))
    b.raw[key]["summary"] = summary
    print("Commands: " + "; ".join("`%s`" % shq(c) for c in cmds.values()) +
          " (configs above; sluice prints its port P), then `%swrk -t%d -c%d -d%ds http://127.0.0.1:P/hello` and "
          "`%swrk -t%d -c%d -d%ds -s pipeline.lua http://127.0.0.1:P/hello -- %d` against each (pipeline.lua: "
          "bench/fanout.py PIPELINE_LUA)." % ("taskset -c 1 " if pin else "", workers, 50 * workers, D,
                                             "taskset -c 1 " if pin else "", workers, 50 * workers, D, DEPTH))


# ---- mixed load on sluice-stream --------------------------------------------

def mixed(b):
    a = b.a
    quality = 95
    D = 10 if a.quick else 20
    res = {}
    for kind in ("control", "loaded"):
        port = free_port()
        cmd = [b.ss, "--listen", "127.0.0.1:%d" % port, "--size", "1280x720", "--quality", str(quality),
               "--log-level", "error"]
        p, _ = start_server(cmd, port_line=False)
        base = "http://127.0.0.1:%d" % port
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)  # a few frames published
        args = ["--url", base + "/stream.mjpg", "--healthy", 20, "--warmup", 2, "--server-pid", p.pid,
                "--stats-url", base + "/api/stats"]
        if kind == "control":
            args += ["--duration", 10 if not a.quick else 6]
        else:
            args += ["--duration", D, "--stalled", 500, "--slow", "10:50", "--freeze", "5:3:3", "--ws", 20,
                     "--slowloris", 300, "--churn", 200, "--flood", 4]
        try:
            d = b.loadgen(args, timeout=D + 120)
        finally:
            stop(p)
        d["_server_cmd"] = shq([b.rel(b.ss)] + cmd[1:])
        res[kind] = d
        log("mixed %s: healthy fps min %.1f gap p99 %s" % (kind, d["classes"]["healthy"]["fps_per_conn_min"],
                                                         d["classes"]["healthy"]["gap_p99_ms"]))
    b.raw["mixed"] = {k: {kk: vv for kk, vv in v.items() if kk != "_table"} for k, v in res.items()}
    c, l = res["control"], res["loaded"]
    st = l["server"]["end"]["stats"]
    frame = st["streams"][0]["largest_frame"]
    print("\n### sluice-stream under mixed load (1280x720 test pattern, quality %d: JPEGs up to %.0f KB, 30 fps)\n" % (
        quality, frame / 1024))
    print("Control: 20 healthy viewers alone. Loaded: the same 20 plus 500 stalled, 10 slow (50 KB/s), 5 that "
          "freeze for 3 s, 20 WebSocket viewers, 300 slowloris clients, 200 connect/first-frame/close cycles "
          "per second and 4 connections fetching /snapshot.jpg back to back (loadgen runs churn, flood and "
          "slowloris on a second thread).\n")
    print("| run | healthy fps min / mean | gap p50 ms | gap p99 ms (worst reader) | lag p99 frames | server CPU % | "
          "RSS MB | held peak MB |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for k, d in (("control", c), ("loaded", l)):
        h = d["classes"]["healthy"]
        s = d["server"]["end"]
        print("| %s | %.1f / %.1f | %s | %s (%s) | %s | %.0f | %.1f | %.2f |" % (
            k, h["fps_per_conn_min"], h["fps_per_conn_mean"], fmt(h["gap_p50_ms"]), fmt(h["gap_p99_ms"]),
            fmt(h["gap_p99_per_reader_max_ms"]), fmt(h["lag_frames_p99"], 0), d["server"]["cpu_pct"],
            s["rss_kb"] / 1024, s["stats"]["memory"]["peak"] / 1e6))
    print("\nThe other classes in the loaded run:\n")
    print("```")
    print(l["_table"].rstrip())
    print("```")
    print("\nCommands: `%s`, then control `%s`; loaded `%s`" % (c["_server_cmd"], c["_cmd"], l["_cmd"]))


# ---- TCP_NOTSENT_LOWAT: automatic vs fixed ----------------------------------

LOWAT_CASES = [("auto", 0), ("fixed 128 KiB (before)", 131072), ("fixed 16 KiB", 16384)]


def lowat(b):
    """1000 fast readers of a 100 KB, 30 fps stream (plus 10 readers at
    50 KB/s), bench_fanout_server --lowat V: the automatic value (the
    average frame, here 100 KB) against the old fixed 128 KiB and the
    16 KiB of finding 5, in interleaved rounds (order rotated)."""
    a = b.a
    D = 3 if a.quick else 5
    n = 200 if a.quick else 1000
    res = {k: [] for k, _ in LOWAT_CASES}
    for r in range(a.rounds):
        order = LOWAT_CASES[r % len(LOWAT_CASES):] + LOWAT_CASES[:r % len(LOWAT_CASES)]
        for name, v in order:
            cmd = [b.srv, "--fps", "30", "--size", FRAME, "--lowat", v]
            p, port = start_server(cmd)
            base = "http://127.0.0.1:%d" % port
            args = ["--url", base + "/stream.mjpg", "--healthy", n, "--slow", "10:50", "--duration", D,
                    "--warmup", 2, "--server-pid", p.pid, "--stats-url", base + "/api/stats"]
            try:
                d = b.loadgen(args)
            finally:
                stop(p)
            h, sl = d["classes"]["healthy"], d["classes"]["slow"]
            row = dict(cpu=d["server"]["cpu_pct"], mbps=h["mb_per_s"], fps_min=h["fps_per_conn_min"],
                       gap_p99=h["gap_p99_ms"], slow_lag_p50=sl.get("lag_frames_p50"),
                       slow_lag_p99=sl.get("lag_frames_p99"),
                       cmd=shq([b.rel(b.srv)] + [str(c) for c in cmd[1:]]) + " ; " + d["_cmd"])
            res[name].append(row)
            log("lowat %s round %d: cpu %.0f%%, %.0f MB/s, gap p99 %s, slow lag p99 %s" % (
                name, r + 1, row["cpu"], row["mbps"], fmt(row["gap_p99"]), fmt(row["slow_lag_p99"], 0)))
    b.raw["lowat"] = res
    print("\n### TCP_NOTSENT_LOWAT: automatic vs fixed, %d fast readers of a 100 KB, 30 fps stream\n" % n)
    print("%d s window after 2 s warm-up, %d interleaved rounds (order rotated); 10 more readers at 50 KB/s. "
          "CPU = server process, %% of one core; "
          "gap = time between part starts of the fast readers (pooled p99); lag = the slow readers' frames "
          "behind the newest frame any reader has seen.\n" % (D, a.rounds))
    print("CPU per GB/s divides by what was delivered (a round whose readers got fewer frames also cost "
          "less), and its ratio is to the automatic value's in the same round.\n")
    print("| setting | CPU % per round | CPU % per GB/s per round | CPU per GB/s / auto: median (per round) | "
          "MB/s | fps per reader min | gap p99 ms | slow readers' lag p50 / p99 frames |")
    print("|---|---|---|---|---:|---:|---:|---|")
    per = lambda r: r["cpu"] / (r["mbps"] / 1000.0) if r["mbps"] else None
    auto = [per(r) for r in res["auto"]]
    for name, _ in LOWAT_CASES:
        rows = res[name]
        ratios = [per(r) / auto[i] for i, r in enumerate(rows) if auto[i] and per(r)]
        print("| %s | %s | %s | **%s** (%s) | %.0f | %.1f | %s | %s / %s |" % (
            name, " / ".join("%.0f" % r["cpu"] for r in rows), " / ".join(fmt(per(r), 1) for r in rows),
            fmt(med(ratios), 2), " / ".join("%.2f" % x for x in ratios), med([r["mbps"] for r in rows]),
            med([r["fps_min"] for r in rows]), fmt(med([r["gap_p99"] for r in rows])),
            fmt(med([r["slow_lag_p50"] for r in rows]), 0), fmt(med([r["slow_lag_p99"] for r in rows]), 0)))
    print("\nCommands:\n")
    for name, _ in LOWAT_CASES:
        print("- %s: `%s`" % (name, res[name][0]["cmd"]))


def loops(b):
    """One loop against two (bench_fanout_server --threads 1 / 2: hub group,
    SO_REUSEPORT) in the same run, interleaved rounds: 1000 readers of a
    100 KB stream at a rate above what they can take (--fps 60), so the
    delivered MB/s is the server's capacity. Ratios per round."""
    a = b.a
    D = 3 if a.quick else 6
    n = 200 if a.quick else 1000
    rows = []
    for r in range(a.rounds):
        row = {}
        for t in ([1, 2] if r % 2 == 0 else [2, 1]):
            p, port = start_server([b.srv, "--fps", "60", "--size", FRAME, "--threads", t])
            base = "http://127.0.0.1:%d" % port
            args = ["--url", base + "/stream.mjpg", "--healthy", n, "--duration", D, "--warmup", 2,
                    "--server-pid", p.pid, "--stats-url", base + "/api/stats"]
            try:
                d = b.loadgen(args)
            finally:
                stop(p)
            h = d["classes"]["healthy"]
            row[t] = dict(mbps=h["mb_per_s"], cpu=d["server"]["cpu_pct"], fps_mean=h["fps_per_conn_mean"],
                          fps_min=h["fps_per_conn_min"], lg_cpu=d["loadgen_cpu_pct"],
                          hwm_kb=d["server"]["hwm_kb"], errors=h["errors"] + h["closed"],
                          cmd=shq([b.rel(b.srv), "--fps", "60", "--size", str(FRAME), "--threads", str(t)]) +
                          " ; " + d["_cmd"])
            log("loops %d round %d: %.0f MB/s, server CPU %.0f%%" % (t, r + 1, row[t]["mbps"], row[t]["cpu"]))
        rows.append(row)
    b.raw["loops"] = rows
    print("\n### One loop against two: %d readers of a 100 KB stream (bench_fanout_server --fps 60)\n" % n)
    print("%d s window after 2 s warm-up, interleaved rounds. MB/s delivered to all readers; CPU = server "
          "process, %% of one core (2 loops may use 200%%); loadgen shares the same %d CPUs.\n"
          % (D, os.cpu_count()))
    print("| round | 1 loop MB/s | 2 loops MB/s | MB/s 2 / 1 | 1 loop CPU % | 2 loops CPU % | CPU 2 / 1 | "
          "CPU per MB 2 / 1 | fps per reader mean 1 / 2 | loadgen CPU % 1 / 2 | errors 1 / 2 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios, cpu_r, eff_r = [], [], []
    for i, row in enumerate(rows):
        o, t = row[1], row[2]
        mr = t["mbps"] / o["mbps"] if o["mbps"] else None
        cr = t["cpu"] / o["cpu"] if o["cpu"] else None
        er = (t["cpu"] / t["mbps"]) / (o["cpu"] / o["mbps"]) if o["mbps"] and t["mbps"] and o["cpu"] else None
        ratios.append(mr)
        cpu_r.append(cr)
        eff_r.append(er)
        print("| %d | %.0f | %.0f | %s | %.0f | %.0f | %s | %s | %s / %s | %.0f / %.0f | %d / %d |" % (
            i + 1, o["mbps"], t["mbps"], fmt(mr, 2), o["cpu"], t["cpu"], fmt(cr, 2), fmt(er, 2),
            fmt(o["fps_mean"]), fmt(t["fps_mean"]), o["lg_cpu"], t["lg_cpu"], o["errors"], t["errors"]))
    print("\nMedian ratios (2 loops / 1 loop): MB/s %s, server CPU %s, CPU per MB %s." % (
        fmt(med([x for x in ratios if x]), 2), fmt(med([x for x in cpu_r if x]), 2), fmt(med([x for x in eff_r if x]), 2)))
    print("\nCommands: `%s`, `%s`" % (rows[0][1]["cmd"], rows[0][2]["cmd"]))


SECTIONS = {"throughput": throughput, "fanout30": fanout30, "memory": memory, "stalled": stalled, "http": http,
            "mixed": mixed, "lowat": lowat, "loops": loops, "http2": http2}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--gst-serve":
        return gst_serve(int(sys.argv[2]), int(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(ROOT, "build/release")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller and shorter (a smoke test)")
    ap.add_argument("--long", action="store_true", help="the stalled-viewer run lasts 60 s")
    ap.add_argument("--json", help="write every raw number to this file")
    ap.add_argument("sections", nargs="*", help=" ".join(SECTIONS))
    a = ap.parse_args()
    for s in a.sections:
        if s not in SECTIONS:
            ap.error("unknown section %r (use: %s)" % (s, " ".join(SECTIONS)))
    a.build = os.path.abspath(a.build)
    b = Bench(a)
    for exe in (b.srv, b.http_srv, b.lg):
        if not os.access(exe, os.X_OK):
            sys.exit("fanout.py: %s is missing (bench/run.sh builds it)" % exe)
    signal.signal(signal.SIGTERM, lambda *x: (stop_all(), sys.exit(1)))
    status = 0
    try:
        for name in a.sections or list(SECTIONS):
            if name == "mixed" and not os.access(b.ss, os.X_OK):
                print("\n### mixed: sluice-stream not built, skipped")
                continue
            t0 = time.time()
            try:
                SECTIONS[name](b)
            except Exception as e:  # report and go on with the others
                print("\n### %s: FAILED: %s\n" % (name, e))
                status = 1
            stop_all()
            print("\n(%s: %.0f s)" % (name, time.time() - t0))
            sys.stdout.flush()
    finally:
        stop_all()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(b.raw, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())

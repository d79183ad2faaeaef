#!/usr/bin/env python3
"""Fan-out, memory and HTTP benchmarks of sluice, side by side with the
machine's loopback limit, GStreamer's tcpserversink and nginx, in one run.

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
              bench_http_server and on nginx (1 worker, return 200),
              interleaved rounds, ratio per round.
  mixed       sluice-stream (1280x720 test pattern, about 100 KB JPEGs)
              with 20 healthy viewers alone (control), then with stalled,
              slow, freezing, WebSocket viewers, slowloris, churn and a
              snapshot flood: the healthy viewers' fps and gap p99 next to
              the control's.

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


# ---- HTTP vs nginx ----------------------------------------------------------

def http(b):
    a = b.a
    if not shutil.which("wrk"):
        print("\n### HTTP: wrk not installed, skipped\n")
        return
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    D = 2 if a.quick else 3
    rounds = 3 if a.quick else 5
    tmp = tempfile.mkdtemp(prefix="sluice-nginx-")
    nport = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1;
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
""" % (tmp, tmp, nport))
    ng = None
    if nginx:
        ng = subprocess.Popen([nginx, "-p", tmp, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ng)
    sp, sport = start_server([b.http_srv])
    for port in ([nport] if ng else []) + [sport]:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def ticks(pids):
        t = 0
        for pid in pids:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    v = f.read().rsplit(")", 1)[1].split()
                t += int(v[11]) + int(v[12])
            except (OSError, IndexError, ValueError):
                pass
        return t

    def server_pids(k):
        if k == "sluice":
            return [sp.pid]
        kids = []
        try:
            with open("/proc/%d/task/%d/children" % (ng.pid, ng.pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            pass
        return [ng.pid] + kids

    def wrk(port, k):
        cmd = ["wrk", "-t1", "-c50", "-d%ds" % D, "http://127.0.0.1:%d/hello" % port]
        pids = server_pids(k)
        t0 = ticks(pids)
        o = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=D + 30).stdout
        cpu_s = (ticks(pids) - t0) / os.sysconf("SC_CLK_TCK")
        m = re.search(r"Requests/sec:\s+([\d.]+)", o)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
        rps = float(m.group(1)) if m else None
        us = cpu_s / (rps * D) * 1e6 if rps else None
        return rps, (int(bad.group(1)) if bad else 0), us

    def head(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        r = s.recv(4096)
        s.close()
        return len(r)
    sizes = {"sluice": head(sport)}
    if ng:
        sizes["nginx"] = head(nport)
    res = []
    try:
        wrk(sport, "sluice")  # warm-up
        if ng:
            wrk(nport, "nginx")
        for r in range(rounds):
            row = {}
            order = ["sluice", "nginx"] if r % 2 == 0 else ["nginx", "sluice"]
            for k in order:
                if k == "nginx" and not ng:
                    continue
                row[k] = wrk(sport if k == "sluice" else nport, k)
            res.append(row)
            log("http round %d: %s" % (r + 1, row))
    finally:
        stop(sp)
        if ng:
            stop(ng)
        shutil.rmtree(tmp, ignore_errors=True)
    b.raw["http"] = {"rounds": res, "response_bytes": sizes}
    print("\n### Small HTTP responses: wrk -t1 -c50 -d%ds, GET /hello (13-byte body), keep-alive\n" % D)
    print("Interleaved rounds (order alternates). nginx %s: 1 worker, `return 200 \"Hello, world!\"`, access_log off, "
          "keepalive_requests raised so that neither server closes connections. Whole response: sluice %d bytes, "
          "nginx %s bytes.\n" % (subprocess.run([nginx, "-v"], stderr=subprocess.PIPE, text=True).stderr.strip().split("/")[-1]
                                 if ng else "(not installed)", sizes["sluice"], sizes.get("nginx", "-")))
    print("Server CPU per request = the server's CPU time (/proc/PID/stat; nginx: master + worker) during the "
          "wrk run / requests answered: wrk and the server share the 2 cores, so requests/s is bounded by both, "
          "while CPU per request is the server's own cost.\n")
    print("| round | sluice req/s | nginx req/s | sluice / nginx | sluice CPU us/req | nginx CPU us/req |")
    print("|---:|---:|---:|---:|---:|---:|")
    ratios, cpu_ratios = [], []
    for i, row in enumerate(res):
        s, _, su = row["sluice"]
        n, _, nu = row.get("nginx", (None, 0, None))
        if s and n:
            ratios.append(s / n)
        if su and nu:
            cpu_ratios.append(nu / su)
        print("| %d | %s | %s | %s | %s | %s |" % (i + 1, fmt(s, 0), fmt(n, 0), fmt(s / n if s and n else None, 2),
                                                  fmt(su, 2), fmt(nu, 2)))
    bad = sum(r["sluice"][1] + (r["nginx"][1] if "nginx" in r else 0) for r in res)
    print("\nMedian sluice / nginx: **%s** requests/s (min %s, max %s); nginx CPU per request / sluice CPU per "
          "request: median %s. Non-2xx responses: %d.\n" % (
              fmt(med(ratios), 2), fmt(min(ratios) if ratios else None, 2), fmt(max(ratios) if ratios else None, 2),
              fmt(med(cpu_ratios), 2), bad))
    print("Commands: `%s` (prints its port P), `nginx -p TMP -c TMP/nginx.conf` (config above), then "
          "`wrk -t1 -c50 -d%ds http://127.0.0.1:P/hello` against each." % (b.rel(b.http_srv), D))


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


SECTIONS = {"throughput": throughput, "fanout30": fanout30, "memory": memory, "stalled": stalled, "http": http,
            "mixed": mixed}


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

#!/usr/bin/env python3
"""Many streams on one WebSocket (/mux) vs one WebSocket per stream: server
CPU and memory per subscription of sluice-stream, in one run with
interleaved rounds.

Prints a Markdown table (with the exact commands) and, with --json FILE,
writes every raw number. bench/run.sh runs it ("bench/run.sh mux"); it needs
the build dir's sluice-stream and loadgen. Loopback only; the server it
starts is stopped at the end.

  bench/mux.py [--build DIR] [--rounds N] [--duration S] [--clients N] [--json FILE]

One sluice-stream with 12 MJPEG test patterns (`--demo-streams 11`: default
+ demo1..demo11) of small frames (320x240, 15 fps), so that neither the
encoders nor loopback are the limit. Each round measures, on that one
process, in an order that alternates between rounds:
  idle    no viewer for --duration s (the 12 JPEG encoders: the server's own
          cost, subtracted for the per-subscription CPU);
  mux     --clients (100) clients of `/mux`, each subscribing to all 12
          streams (loadgen --mux: 1200 subscriptions over 100 sockets);
  single  100 x 12 = 1200 WebSocket viewers of `/streams/NAME/ws` (`/ws` for
          the default stream), 100 per stream (loadgen --ws --ws-paths).
The single-stream side is the per-stream WebSocket, not /stream.mjpg: both
sides then send one WebSocket binary message per frame per subscription
from the same shared JPEG, so what differs is only the connection count
(and the 20-byte mux header), not the framing.
Server CPU = utime + stime of the server (/proc/PID/stat) over the window;
per-subscription CPU = (CPU - idle CPU of the same round) / subscriptions,
and per frame delivered (the same with the frames loadgen counted). Memory:
the library's exact counters from /api/stats (memory.held: the manager's
frames and queued chunks; memory.lib_total: every byte the library holds;
memory.lib_meta: its connection, subscriber and other bookkeeping), read
before the clients connect and at the window's end; per subscription =
the difference / subscriptions.
"""
import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanout as fo  # noqa: E402  (process helpers and the loadgen runner)

SIZE, FPS, EXTRA = "320x240", 15, 11
CLK = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])


def fetch_json(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        k = s.recv(65536)
        if not k:
            break
        data += k
    s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def start(b):
    port = fo.free_port()
    cmd = [b.ss, "--listen", "127.0.0.1:%d" % port, "--demo-streams", EXTRA, "--size", SIZE, "--fps", FPS,
           "--max-viewers", 2000, "--log-level", "error"]
    p, _ = fo.start_server(cmd, port_line=False)
    for _ in range(200):
        if p.poll() is not None:
            raise RuntimeError("sluice-stream exited at start (status %s)" % p.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(1.0)  # every pattern running, a frame in each hub
    return p, port, fo.shq([b.rel(b.ss)] + [str(c) for c in cmd[1:]])


def idle(p, secs):
    t0, w0 = ticks(p.pid), time.monotonic()
    time.sleep(secs)
    t1, w1 = ticks(p.pid), time.monotonic()
    return (t1 - t0) / CLK / (w1 - w0) * 100.0


def measure(b, p, port, kind, streams, a):
    base = "http://127.0.0.1:%d" % port
    nsub = a.clients * len(streams)
    common = ["--duration", a.duration, "--warmup", a.warmup, "--server-pid", p.pid, "--stats-url",
              base + "/api/stats", "--connect-timeout", 15]
    if kind == "mux":
        args = ["--url", base + "/stream.mjpg", "--mux", a.clients, "--mux-streams",
                ",".join(s["name"] for s in streams)] + common
    else:
        args = ["--url", base + "/stream.mjpg", "--ws", nsub, "--ws-paths",
                ",".join(s["ws"] for s in streams)] + common
    d = b.loadgen(args, timeout=a.duration + a.warmup + 60)
    c = d["classes"][kind if kind == "mux" else "ws"]
    m0 = d["server"]["before"]["stats"]["memory"]
    m1 = d["server"]["end"]["stats"]["memory"]
    st1 = d["server"]["end"]["stats"]
    subs_seen = sum(s["viewers"] for s in st1["streams"])
    out = dict(kind=kind, subs=nsub, conns=a.clients if kind == "mux" else nsub, cpu=d["server"]["cpu_pct"],
               window=d["window_s"], frames=c["frames"], bytes=c["bytes"], errors=c["errors"] + c["closed"],
               lg_cpu=d["loadgen_cpu_pct"], subs_seen=subs_seen, conns_seen=st1["connections"],
               rss_kb=d["server"]["end"]["rss_kb"], rss0_kb=d["server"]["before"]["rss_kb"],
               mem0=m0, mem1=m1,
               cmd=fo.shq([b.rel(b.lg)] + [str(x) for x in args] + ["--json"]).replace(base, "http://127.0.0.1:PORT")
               .replace("--server-pid %d" % p.pid, "--server-pid PID"))
    if kind == "mux":
        out.update(fps_sub_mean=c["fps_per_sub_mean"], fps_sub_min=c["fps_per_sub_min"],
                   subscribed=c["subscribed"], sub_errors=c["sub_errors"], no_frames=c["subs_without_frames"])
    else:
        out.update(fps_sub_mean=c["fps_per_conn_mean"], fps_sub_min=c["fps_per_conn_min"],
                   subscribed=c["ok"], sub_errors=c["refused"], no_frames=None)
    for k in ("held", "lib_total", "lib_meta", "lib_in"):
        out["d_" + k] = m1.get(k, 0) - m0.get(k, 0)
    return out


def run(b, a):
    p, port, scmd = start(b)
    rounds = []
    try:
        streams = fetch_json(port, "/api/streams")["streams"]
        if len(streams) != EXTRA + 1:
            raise RuntimeError("the server has %d streams, not %d" % (len(streams), EXTRA + 1))
        for r in range(a.rounds):
            order = ["mux", "single"] if r % 2 == 0 else ["single", "mux"]
            row = {"idle": idle(p, a.duration)}
            for kind in order:
                v = measure(b, p, port, kind, streams, a)
                row[kind] = v
                fo.log("mux round %d %s: CPU %.1f%% (idle %.1f%%), %d subs on %d conns, fps/sub %.1f/%.1f, "
                       "lib_total +%d B, meta +%d B" % (r + 1, kind, v["cpu"], row["idle"], v["subs_seen"],
                                                         v["conns_seen"], v["fps_sub_mean"], v["fps_sub_min"],
                                                         v["d_lib_total"], v["d_lib_meta"]))
                time.sleep(1.0)  # the clients' connections gone before the next baseline
            row["order"] = order
            rounds.append(row)
        end = fetch_json(port, "/api/stats")
    finally:
        fo.stop(p)
    return rounds, scmd, end


def cpu_per_sub(v, idle_pct):
    """Server CPU per subscription, microseconds of CPU per second."""
    return (v["cpu"] - idle_pct) / 100.0 / v["subs"] * 1e6


def cpu_per_frame(v, idle_pct):
    """Server CPU per frame delivered to one subscription, microseconds."""
    return (v["cpu"] - idle_pct) / 100.0 * v["window"] / v["frames"] * 1e6 if v["frames"] else None


def ratio(x, y):
    return x / y if x is not None and y else None


def report(rounds, scmd, a):
    fmt, med = fo.fmt, fo.med
    n = rounds[0]["mux"]["subs"]

    def rng(vals, nd=2):
        vals = [v for v in vals if v is not None]
        if not vals:
            return "-"
        return "**%s** (%s-%s)" % (fmt(med(vals), nd), fmt(min(vals), nd), fmt(max(vals), nd)) if len(vals) > 1 \
            else "**%s**" % fmt(vals[0], nd)

    print("\n### %d clients x 12 subscriptions over /mux vs %d single-stream WebSockets\n" % (a.clients, n))
    print("One sluice-stream with 12 MJPEG test patterns (%s, %d fps); %d interleaved rounds on it (order "
          "alternates), each: %g s with no viewer (idle), then %d `/mux` clients subscribing to all 12 streams, "
          "and %d WebSocket viewers of `/streams/NAME/ws`, 100 per stream (same framing: one binary message "
          "per frame per subscription). %g s windows after %g s of warm-up. CPU = the server's utime+stime "
          "over the window, %% of one core; per subscription = (CPU - idle CPU of the round) / %d. Memory = "
          "the library's exact counters (/api/stats) at the window end minus before the clients connected, "
          "per subscription: held (the manager's frames, queued chunks and input buffers), lib_in (input "
          "buffers), lib_meta (connection, subscriber and other bookkeeping), lib_total (every byte the "
          "library holds). The machine has 2 "
          "cores, shared by loadgen and the server.\n" % (
              SIZE, FPS, len(rounds), a.duration, a.clients, n, a.duration, a.warmup, n))
    print("| round | mode | connections (server) | subscriptions (server) | idle CPU % | CPU % | "
          "CPU us/s per sub | CPU us per frame | fps per sub mean / min | held B/sub | lib_in B/sub | "
          "lib_meta B/sub | lib_total B/sub | RSS MB | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for i, row in enumerate(rounds):
        for kind in row["order"]:
            v = row[kind]
            print("| %d | %s | %d | %d | %.1f | %.1f | %s | %s | %.1f / %.1f | %.0f | %.0f | %.0f | %.0f | %.1f | %d |" % (
                i + 1, "/mux" if kind == "mux" else "/ws per stream", v["conns_seen"], v["subs_seen"], row["idle"],
                v["cpu"], fmt(cpu_per_sub(v, row["idle"]), 1), fmt(cpu_per_frame(v, row["idle"]), 2),
                v["fps_sub_mean"], v["fps_sub_min"], v["d_held"] / v["subs"], v["d_lib_in"] / v["subs"],
                v["d_lib_meta"] / v["subs"], v["d_lib_total"] / v["subs"], v["rss_kb"] / 1024.0, v["errors"] + (v["sub_errors"] or 0)))
    rc, rs, rf, rl, rm = [], [], [], [], []
    for row in rounds:
        m, s = row["mux"], row["single"]
        rc.append(ratio(m["cpu"], s["cpu"]))
        rs.append(ratio(cpu_per_sub(m, row["idle"]), cpu_per_sub(s, row["idle"])))
        rf.append(ratio(cpu_per_frame(m, row["idle"]), cpu_per_frame(s, row["idle"])))
        rl.append(ratio(m["d_lib_total"], s["d_lib_total"]))
        rm.append(ratio(m["d_lib_meta"], s["d_lib_meta"]))
    print("\nRatios /mux / single-stream, per round then median (min-max over rounds):\n")
    print("| server CPU (whole process) | CPU per subscription (idle subtracted) | CPU per frame delivered "
          "(idle subtracted) | lib_meta per subscription | lib_total per subscription |")
    print("|---|---|---|---|---|")
    print("| %s | %s | %s | %s | %s |" % (rng(rc), rng(rs), rng(rf), rng(rm), rng(rl)))
    print("\nCommands (PORT chosen free by the script, PID the server's):\n")
    print("- server: `%s`" % scmd.replace(scmd.split("--listen ")[1].split()[0], "127.0.0.1:PORT"))
    print("- /mux: `%s`" % rounds[0]["mux"]["cmd"])
    print("- single: `%s`" % rounds[0]["single"]["cmd"])
    return dict(cpu=rc, cpu_per_sub=rs, cpu_per_frame=rf, lib_total=rl, lib_meta=rm)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(fo.ROOT, "build/release")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0, help="measured window, s")
    ap.add_argument("--warmup", type=float, default=1.0, help="after the clients connected, s")
    ap.add_argument("--clients", type=int, default=100, help="mux clients (x 12 subscriptions each)")
    ap.add_argument("--json", help="write every raw number to this file")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    b = fo.Bench(a)
    for exe in (b.ss, b.lg):
        if not os.access(exe, os.X_OK):
            sys.exit("mux.py: %s is missing (bench/run.sh builds it)" % exe)
    import signal
    signal.signal(signal.SIGTERM, lambda *x: (fo.stop_all(), sys.exit(1)))
    t0 = time.time()
    try:
        rounds, scmd, end = run(b, a)
        summary = report(rounds, scmd, a)
    finally:
        fo.stop_all()
    fo.log("mux: %.0f s" % (time.time() - t0))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": rounds, "summary": summary, "server": scmd, "end_stats_memory": end.get("memory"),
                       "args": {k: v for k, v in vars(a).items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

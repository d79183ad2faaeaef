#!/usr/bin/env python3
"""MJPEG vs H.264 fan-out, and fMP4 vs raw H.264 fan-out, of sluice-stream's
640x480, 30 fps test pattern, in one run with interleaved rounds.

Prints Markdown tables (with the exact commands) and, with --json FILE,
writes every raw number. bench/run.sh runs it ("bench/run.sh h264"); it
needs the build dir's sluice-stream (built with openh264) and loadgen.
Loopback only; every server it starts is stopped at the end.

  bench/h264.py [--build DIR] [--rounds N] [--duration S] [--json FILE]

Each round starts one sluice-stream per codec (the order alternates between
rounds) and, on that one process, measures in turn:
  idle      0 viewers for --duration s: the server's own cost (for H.264
            this is mostly the openh264 encoder, which runs in the server);
  100, 1000 viewers that read everything: MJPEG `/stream.mjpg` through
            loadgen's multipart readers (--healthy), H.264 `/stream.h264`
            through raw readers counting Annex-B pictures (--raw-count h264);
  mp4 1000  (H.264 server only) 1000 raw readers of `/stream.mp4` counting
            moof boxes (--raw-count mp4); the 1000 raw-H.264 and 1000 fMP4
            runs swap order between rounds.
Server CPU = utime + stime of the server process (/proc/PID/stat) over the
measured window / the window. Per-viewer CPU = (CPU at N - CPU idle) / N,
with the idle figure of the same server in the same round.
The fMP4 runs also read the stream's counters from /api/stats at the
window edges: frames published (frames_in) and fMP4 fragments built
(mp4_fragments), which must match one for one whatever the viewer count.
"""
import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fanout as fo  # noqa: E402  (process helpers and the loadgen runner)

SIZE, FPS = "640x480", 30
CLK = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])


def server_cmd(b, codec, port):
    cmd = [b.ss, "--listen", "127.0.0.1:%d" % port, "--source", "testpattern", "--size", SIZE, "--fps", str(FPS),
           "--max-viewers", "2000", "--log-level", "error"]
    if codec == "h264":
        cmd[-2:-2] = ["--codec", "h264"]
    return cmd


def start(b, codec):
    port = fo.free_port()
    cmd = server_cmd(b, codec, port)
    p, _ = fo.start_server(cmd, port_line=False)
    for _ in range(200):
        if p.poll() is not None:
            raise RuntimeError("sluice-stream %s exited at start (status %s)%s" % (
                codec, p.returncode, ": built without openh264?" if codec == "h264" else ""))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)  # the pattern (and encoder) running, a few frames published
    return p, port, fo.shq([b.rel(b.ss)] + cmd[1:])


def idle(p, secs):
    t0, w0 = ticks(p.pid), time.monotonic()
    time.sleep(secs)
    t1, w1 = ticks(p.pid), time.monotonic()
    return (t1 - t0) / CLK / (w1 - w0) * 100.0


def stream_stats(sample):
    st = (sample or {}).get("stats") or {}
    s = st.get("streams") or [{}]
    return s[0], st.get("memory", {})


def viewers(b, p, port, kind, n, a):
    base = "http://127.0.0.1:%d" % port
    common = ["--duration", a.duration, "--warmup", a.warmup, "--server-pid", p.pid, "--stats-url",
              base + "/api/stats", "--connect-timeout", 10]
    if kind == "mjpeg":
        args = ["--url", base + "/stream.mjpg", "--healthy", n] + common
        cls = "healthy"
    else:
        path = "/stream.mp4" if kind == "mp4" else "/stream.h264"
        args = ["--raw-url", base + path, "--raw", n, "--raw-count", kind] + common
        cls = "raw"
    d = b.loadgen(args, timeout=a.duration + a.warmup + 60)
    c = d["classes"][cls]
    s0, _ = stream_stats(d["server"]["start"])
    s1, m1 = stream_stats(d["server"]["end"])
    out = dict(kind=kind, n=n, cpu=d["server"]["cpu_pct"], window=d["window_s"], bytes=c["bytes"],
               bps_viewer=c["bytes"] / n / d["window_s"],
               bytes_frame=c["bytes"] / c["frames"] if c["frames"] else None, frames_total=c["frames"], fps_mean=c["fps_per_conn_mean"],
               fps_min=c["fps_per_conn_min"], gap_p99=c["gap_p99_ms"], errors=c["errors"] + c["closed"],
               ok=c["ok"], lg_cpu=d["loadgen_cpu_pct"], connect_s=d["connect_s"],
               viewers_seen=s1.get("viewers"), held=s1.get("held"), frames_held=s1.get("frames_held"),
               lib_total=m1.get("lib_total"), rss_kb=d["server"]["end"]["rss_kb"],
               cmd=fo.shq([b.rel(b.lg)] + [str(x) for x in args] + ["--json"]).replace(base, "http://127.0.0.1:PORT")
               .replace("--server-pid %d" % p.pid, "--server-pid PID"))
    for k in ("frames_in", "mp4_fragments", "mp4_bytes", "seq"):
        if k in s0 and k in s1:
            out["d_" + k] = s1[k] - s0[k]
            out[k] = s1[k]
    drops = s1.get("drops") or {}
    drops0 = s0.get("drops") or {}
    out["drops"] = sum(drops.get(k, 0) - drops0.get(k, 0) for k in drops)
    return out


def run(b, a):
    rounds = []
    cmds = {}
    for r in range(a.rounds):
        order = ["mjpeg", "h264"] if r % 2 == 0 else ["h264", "mjpeg"]
        row = {}
        for codec in order:
            p, port, cmds[codec] = start(b, codec)
            try:
                res = {"idle": idle(p, a.duration)}
                kinds = [("mjpeg" if codec == "mjpeg" else "h264", n) for n in a.viewers]
                if codec == "h264":
                    big = max(a.viewers)
                    kinds += [("mp4", big)]
                    if r % 2 == 1:  # swap the two 1000-viewer runs
                        i, j = kinds.index(("h264", big)), kinds.index(("mp4", big))
                        kinds[i], kinds[j] = kinds[j], kinds[i]
                for kind, n in kinds:
                    v = viewers(b, p, port, kind, n, a)
                    res["%s/%d" % (kind, n)] = v
                    fo.log("h264 round %d %s %d viewers: CPU %.1f%% (idle %.1f%%), %.0f B/s per viewer, fps %.1f/%.1f"
                           % (r + 1, kind, n, v["cpu"], res["idle"], v["bps_viewer"], v["fps_mean"], v["fps_min"]))
                end = fetch_json(port, "/api/stats")
            finally:
                fo.stop(p)
            res["end"] = stream_stats({"stats": end})[0] if end else {}
            row[codec] = res
        rounds.append(row)
    return rounds, cmds


def fetch_json(port, path):
    try:
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
    except (OSError, ValueError, IndexError):
        return None


def per_viewer_us(v, idle_pct):
    """Server CPU per viewer, in microseconds of CPU per second of stream."""
    return (v["cpu"] - idle_pct) / 100.0 / v["n"] * 1e6


def per_frame_us(v, idle_pct):
    """Server CPU per frame delivered to one viewer, in microseconds: the
    fan-out cost with the delivered frame rate (which a loaded machine makes
    vary from window to window) taken out."""
    if not v["frames_total"]:
        return None
    return (v["cpu"] - idle_pct) / 100.0 * v["window"] / v["frames_total"] * 1e6


def fmt(x, nd=1):
    return fo.fmt(x, nd)


def ratio(x, y):
    return x / y if x is not None and y else None


def report(rounds, cmds, a):
    med = fo.med
    ns = a.viewers
    big = max(ns)
    R = len(rounds)

    def rng(vals, nd=2):
        vals = [v for v in vals if v is not None]
        if not vals:
            return "-"
        return "**%s** (%s-%s)" % (fmt(med(vals), nd), fmt(min(vals), nd), fmt(max(vals), nd)) if len(vals) > 1 \
            else "**%s**" % fmt(vals[0], nd)

    print("\n### MJPEG vs H.264 fan-out: the same 640x480, 30 fps test pattern\n")
    print("%d interleaved rounds (codec order alternates); per round one sluice-stream per codec, measured with 0 "
          "viewers, then %s viewers on loopback reading everything (MJPEG: loadgen's multipart readers on "
          "`/stream.mjpg`; H.264: raw readers on `/stream.h264` counting Annex-B pictures). %g s windows after "
          "%g s of warm-up. CPU = the server process's utime+stime over the window / the window, %% of one core. "
          "The H.264 pattern is encoded by openh264 inside the server, so the idle row is mostly the encoder, "
          "and per-viewer CPU = (CPU at N - idle CPU of the same server in the same round) / N, in microseconds "
          "of CPU per second of stream. The machine has 2 cores, shared by loadgen and the server.\n" % (
              R, " and ".join(str(n) for n in ns), a.duration, a.warmup))
    print("| round | codec | idle CPU % | viewers | CPU % | per-viewer CPU us/s | CPU us per frame per viewer | "
          "bytes per viewer per s | "
          "bytes per frame | fps per viewer mean / min | gap p99 ms | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for i, row in enumerate(rounds):
        for codec in ("mjpeg", "h264"):
            res = row[codec]
            for n in ns:
                v = res["%s/%d" % (codec, n)]
                print("| %d | %s | %.1f | %d | %.1f | %s | %s | %.0f | %s | %.1f / %.1f | %s | %d |" % (
                    i + 1, "MJPEG" if codec == "mjpeg" else "H.264", res["idle"], n, v["cpu"],
                    fmt(per_viewer_us(v, res["idle"]), 1), fmt(per_frame_us(v, res["idle"]), 2), v["bps_viewer"], fmt(v["bytes_frame"], 0), v["fps_mean"], v["fps_min"],
                    fmt(v["gap_p99"]), v["errors"]))
    print("\nRatios H.264 / MJPEG, per round then median (min-max over rounds):\n")
    print("| viewers | bytes per viewer per s | bytes per frame | server CPU (whole process) | "
          "per-viewer CPU (idle subtracted) | CPU per frame per viewer (idle subtracted) |")
    print("|---:|---|---|---|---|---|")
    summary = {}
    for n in ns:
        rb, rf, rc, rp, rq = [], [], [], [], []
        for row in rounds:
            m, h = row["mjpeg"]["mjpeg/%d" % n], row["h264"]["h264/%d" % n]
            rb.append(ratio(h["bps_viewer"], m["bps_viewer"]))
            rf.append(ratio(h["bytes_frame"], m["bytes_frame"]))
            rc.append(ratio(h["cpu"], m["cpu"]))
            rp.append(ratio(per_viewer_us(h, row["h264"]["idle"]), per_viewer_us(m, row["mjpeg"]["idle"])))
            rq.append(ratio(per_frame_us(h, row["h264"]["idle"]), per_frame_us(m, row["mjpeg"]["idle"])))
        summary[n] = dict(bytes=rb, bytes_frame=rf, cpu=rc, per_viewer=rp, per_frame=rq)
        print("| %d | %s | %s | %s | %s | %s |" % (n, rng(rb, 3), rng(rf, 3), rng(rc), rng(rp), rng(rq)))
    print("\nIdle CPU (0 viewers), median over rounds: MJPEG %s %%, H.264 %s %% (ratio %s).\n" % (
        fmt(med([r["mjpeg"]["idle"] for r in rounds]), 1), fmt(med([r["h264"]["idle"] for r in rounds]), 1),
        fmt(ratio(med([r["h264"]["idle"] for r in rounds]), med([r["mjpeg"]["idle"] for r in rounds])), 2)))

    print("\n### fMP4 vs raw H.264 fan-out: %d viewers of the same H.264 stream\n" % big)
    print("Same H.264 server and round as above: %d raw readers of `/stream.h264` and %d of `/stream.mp4` "
          "(counting moof boxes), one run after the other (order swapped each round). Frames published and "
          "fMP4 fragments built = the stream's `frames_in` and `mp4_fragments` from /api/stats, difference "
          "between the samples loadgen takes at the window's start and end (a fragment is built when the "
          "first fMP4 viewer is sent its frame, so the two can differ by the frames in flight at the edges); "
          "frames delivered = moof boxes counted by all the viewers together in the window; held = the hub's exact held bytes at the window end (frames and fragments, each "
          "once).\n" % (big, big))
    print("| round | transport | CPU % | per-viewer CPU us/s | CPU us per frame per viewer | bytes per viewer per s | "
          "fps per viewer mean / min | "
          "frames published | frames delivered (all viewers) | fMP4 fragments built | held KB / frames held | errors |")
    print("|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
    rp, rb, rq = [], [], []
    tot = []
    for i, row in enumerate(rounds):
        res = row["h264"]
        for kind in ("h264", "mp4"):
            v = res["%s/%d" % (kind, big)]
            print("| %d | %s | %.1f | %s | %s | %.0f | %.1f / %.1f | %s | %s | %s | %.0f / %s | %d |" % (
                i + 1, "raw H.264" if kind == "h264" else "fMP4", v["cpu"], fmt(per_viewer_us(v, res["idle"]), 1),
                fmt(per_frame_us(v, res["idle"]), 2),
                v["bps_viewer"], v["fps_mean"], v["fps_min"], v.get("d_frames_in", "-"),
                v["frames_total"] if kind == "mp4" else "-", v.get("d_mp4_fragments", "-"), (v["held"] or 0) / 1024, v["frames_held"], v["errors"]))
        h, m = res["h264/%d" % big], res["mp4/%d" % big]
        rp.append(ratio(per_viewer_us(m, res["idle"]), per_viewer_us(h, res["idle"])))
        rb.append(ratio(m["bps_viewer"], h["bps_viewer"]))
        rq.append(ratio(per_frame_us(m, res["idle"]), per_frame_us(h, res["idle"])))
        e = res.get("end") or {}
        tot.append((e.get("frames_in"), e.get("mp4_fragments"), e.get("mp4_bytes")))
    print("\nRatios fMP4 / raw H.264 (%d viewers), median (min-max): per-viewer CPU %s; CPU per frame per "
          "viewer %s; bytes per viewer per s %s.\n" % (big, rng(rp), rng(rq), rng(rb, 3)))
    print("Whole life of each H.264 server (from /api/stats at its end; fragments are built only while an fMP4 "
          "viewer takes frames, i.e. during the fMP4 run): %s.\n" % "; ".join(
              "round %d: %s frames published, %s fragments built, %s bytes of fragments" % (
                  i + 1, f, g, by) for i, (f, g, by) in enumerate(tot)))
    summary["mp4_per_viewer"] = rp
    summary["mp4_bytes"] = rb
    summary["mp4_per_frame"] = rq
    print("Commands (PORT chosen free by the script, PID the server's; each server first sits %g s with no "
          "viewer for the idle figure):\n" % a.duration)
    for k in ("mjpeg", "h264"):
        if k in cmds:
            print("- %s server: `%s`" % ("MJPEG" if k == "mjpeg" else "H.264", cmds[k].replace(
                cmds[k].split("--listen ")[1].split()[0], "127.0.0.1:PORT")))
    seen = set()
    for row in rounds:
        for codec in ("mjpeg", "h264"):
            for key, v in row[codec].items():
                if isinstance(v, dict) and "cmd" in v and key not in seen:
                    seen.add(key)
                    print("- %s viewers: `%s`" % (key, v["cmd"]))
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(fo.ROOT, "build/release")))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=2.0, help="measured window, s")
    ap.add_argument("--warmup", type=float, default=1.0, help="after the viewers connected, s")
    ap.add_argument("--viewers", default="100,1000", help="viewer counts, comma-separated")
    ap.add_argument("--json", help="write every raw number to this file")
    a = ap.parse_args()
    a.viewers = [int(x) for x in a.viewers.split(",")]
    a.build = os.path.abspath(a.build)
    b = fo.Bench(a)
    for exe in (b.ss, b.lg):
        if not os.access(exe, os.X_OK):
            sys.exit("h264.py: %s is missing (bench/run.sh builds it)" % exe)
    import signal
    signal.signal(signal.SIGTERM, lambda *x: (fo.stop_all(), sys.exit(1)))
    t0 = time.time()
    try:
        rounds, cmds = run(b, a)
        summary = report(rounds, cmds, a)
    finally:
        fo.stop_all()
    fo.log("h264: %.0f s" % (time.time() - t0))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": rounds, "summary": summary, "commands": cmds,
                       "args": {k: v for k, v in vars(a).items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

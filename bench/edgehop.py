#!/usr/bin/env python3
"""What an edge hop costs: N viewers of a 100 KB x 30 fps MJPEG stream
straight from an origin sluice-stream, and the same N through one edge
(sluice-stream --edge), in interleaved rounds of one run.

  bench/edgehop.py [--build DIR] [--rounds N] [--viewers 100,500] [--secs S] [--json FILE]

The origin serves a dir: source of 90 JPEGs of the 1280x720 test pattern
(quality 94, about 100 KB each, taken from a throwaway sluice-stream), so
its CPU is fan-out and not JPEG encoding. The edge mirrors it (one upstream
connection). Viewers are loadgen's healthy MJPEG readers (bench/loadgen.c).
CPU is each process's utime + stime from /proc over the measured window
(after loadgen's warm-up), in % of one core.

Latency of the extra hop: two probe readers (this script, one thread each)
note when each frame arrives; a frame is recognised by its bytes (CRC-32),
which the edge relays unchanged. Origin rows: both probes on the origin,
which gives the measurement's own floor; edge rows: one probe on the
origin, one on the edge, so the difference is what the hop adds, at the
load of that row. Loopback only; every process started is stopped.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
procs = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def start_ss(ss, args):
    p = subprocess.Popen([ss, "--listen", "127.0.0.1:0", "--log-level", "warn"] + [str(a) for a in args],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    line = p.stdout.readline()
    m = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line or "")
    if not m:
        raise RuntimeError("sluice-stream did not start: %r" % line)
    threading.Thread(target=p.stdout.read, daemon=True).start()  # drain
    return p, int(m.group(1))


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)  # at once, no drain
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in procs:
        procs.remove(p)


def get(port, path, timeout=5):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.read()


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def snapshots(ss, folder, n):
    p, port = start_ss(ss, ["--size", "1280x720", "--fps", "30", "--quality", "94"])
    try:
        time.sleep(0.5)
        sizes = []
        for i in range(n):
            _, body = get(port, "/snapshot.jpg")
            with open(os.path.join(folder, "f%03d.jpg" % i), "wb") as f:
                f.write(body)
            sizes.append(len(body))
            time.sleep(0.04)
        return sizes
    finally:
        stop(p)


class Probe(threading.Thread):
    """One MJPEG reader: arrival time (monotonic) of each frame, by CRC."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.seen, self.stop_at = port, [], None

    def run(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while self.stop_at is None or time.monotonic() < self.stop_at:
            d = s.recv(1 << 20)
            if not d:
                break
            buf += d
            while True:
                i = buf.find(b"--sluiceframe\r\n")
                h = buf.find(b"\r\n\r\n", i) if i >= 0 else -1
                if h < 0:
                    break
                m = re.search(rb"Content-Length: (\d+)", buf[i:h])
                n = int(m.group(1))
                if len(buf) < h + 4 + n:
                    break
                self.seen.append((zlib.crc32(buf[h + 4:h + 4 + n]), time.monotonic()))
                buf = buf[h + 4 + n:]
        s.close()


def hop_ms(a, b):
    """Per frame seen by both probes: b's arrival minus a's, in ms (the frames
    repeat every 3 s: match each of b's with a's latest arrival before it
    within 1.5 s)."""
    last = {}
    out = []
    ia = 0
    for crc, t in b:
        while ia < len(a) and a[ia][1] <= t + 0.5:
            last[a[ia][0]] = a[ia][1]
            ia += 1
        ta = last.get(crc)
        if ta is not None and abs(t - ta) < 1.5:
            out.append((t - ta) * 1000)
    return out


def pct(v, q):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(ROOT, "build", "release")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--viewers", default="100,500")
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--json")
    a = ap.parse_args()
    ss = os.path.join(a.build, "sluice-stream")
    lg = os.path.join(a.build, "loadgen")
    for exe in (ss, lg):
        if not os.access(exe, os.X_OK):
            sys.exit("edgehop: %s not built (cmake --build %s --target sluice-stream loadgen)" % (exe, a.build))
    hz = os.sysconf("SC_CLK_TCK")
    folder = tempfile.mkdtemp(prefix="sluice-edgehop-")
    rows = []
    try:
        sizes = snapshots(ss, folder, 90)
        log("edgehop: 90 frames, %.0f KB on average" % (statistics.mean(sizes) / 1000))
        origin, oport = start_ss(ss, ["-s", "dir:" + folder, "--fps", "30", "--max-viewers", "2000"])
        edge, eport = start_ss(ss, ["--edge", "http://127.0.0.1:%d" % oport, "--max-viewers", "2000"])
        t_end = time.time() + 15
        while time.time() < t_end:
            try:
                if get(eport, "/healthz")[0] == 200:
                    break
            except Exception:
                pass
            time.sleep(0.1)
        views = [int(x) for x in a.viewers.split(",")]
        warm = 2
        for r in range(a.rounds):
            for n in views:
                modes = ["origin", "edge"] if r % 2 == 0 else ["edge", "origin"]
                for mode in modes:
                    port, pid = (oport, origin.pid) if mode == "origin" else (eport, edge.pid)
                    pa, pb = Probe(oport), Probe(port)
                    pa.start(); pb.start()
                    cpu = {}

                    def sample():
                        time.sleep(warm + 0.3)
                        t0 = time.monotonic()
                        c0 = (ticks(origin.pid), ticks(edge.pid))
                        time.sleep(a.secs - 0.6)
                        c1 = (ticks(origin.pid), ticks(edge.pid))
                        dt = time.monotonic() - t0
                        cpu["origin"] = (c1[0] - c0[0]) * 100.0 / hz / dt
                        cpu["edge"] = (c1[1] - c0[1]) * 100.0 / hz / dt
                    st = threading.Thread(target=sample)
                    st.start()
                    cmd = [lg, "--url", "http://127.0.0.1:%d/stream.mjpg" % port, "--healthy", n,
                           "--duration", a.secs, "--warmup", warm, "--server-pid", pid, "--json"]
                    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
                    st.join()
                    stop_at = time.monotonic()
                    pa.stop_at = pb.stop_at = stop_at
                    pa.join(3); pb.join(3)
                    d = json.loads(out.stdout)
                    h = d["classes"]["healthy"]
                    hop = hop_ms(pa.seen, pb.seen)
                    row = dict(round=r, viewers=n, path=mode, mbps=h["mb_per_s"], fps_min=h["fps_per_conn_min"],
                               fps_mean=h["fps_per_conn_mean"], gap_p99=h["gap_p99_per_reader_median_ms"],
                               cpu_origin=cpu["origin"], cpu_edge=cpu["edge"], hop_n=len(hop),
                               hop_p50=pct(hop, 0.5), hop_p99=pct(hop, 0.99),
                               cmd=" ".join(os.path.relpath(str(c), ROOT) if str(c).startswith(ROOT) else str(c)
                                            for c in cmd))
                    rows.append(row)
                    log("edgehop r%d %d %s: %.0f MB/s, cpu origin %.1f edge %.1f, hop p50 %s p99 %s ms" % (
                        r, n, mode, row["mbps"], row["cpu_origin"], row["cpu_edge"], row["hop_p50"], row["hop_p99"]))
        stop(edge)
        stop(origin)
    finally:
        for p in list(procs):
            stop(p)
        for f in os.listdir(folder):
            os.unlink(os.path.join(folder, f))
        os.rmdir(folder)

    def med(key, n, mode):
        v = [x[key] for x in rows if x["viewers"] == n and x["path"] == mode and x[key] is not None]
        return statistics.median(v) if v else float("nan")
    print("\n### An edge hop: viewers straight from the origin vs through one edge (bench/edgehop.py)\n")
    print("100 KB x 30 fps MJPEG (dir: source of %d-byte-average JPEGs), loadgen healthy readers, %d s window "
          "after %d s warm-up, medians of %d interleaved rounds. CPU = utime + stime of each process over the "
          "window, %% of one core. Hop = arrival at a probe reader of the edge minus arrival of the same frame "
          "at a probe reader of the origin (origin rows: two origin readers, the floor of the method).\n"
          % (statistics.mean(sizes), a.secs, warm, a.rounds))
    print("| viewers | path | MB/s delivered | fps per reader min / mean | gap p99 ms (median reader) | "
          "origin CPU % | edge CPU % | hop p50 ms | hop p99 ms |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for n in views:
        for mode in ("origin", "edge"):
            print("| %d | %s | %.0f | %.1f / %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |" % (
                n, "origin" if mode == "origin" else "origin -> edge", med("mbps", n, mode),
                med("fps_min", n, mode), med("fps_mean", n, mode), med("gap_p99", n, mode),
                med("cpu_origin", n, mode), med("cpu_edge", n, mode), med("hop_p50", n, mode),
                med("hop_p99", n, mode)))
    print("\nCommands: `%s` (origin: `sluice-stream -s dir:FRAMES --fps 30 --max-viewers 2000`; edge: "
          "`sluice-stream --edge http://127.0.0.1:OPORT --max-viewers 2000`)." % rows[-1]["cmd"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

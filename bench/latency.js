#!/usr/bin/env node
// Latency from publish to the picture on screen in Chromium, for the three
// players of the viewer page, side by side in one run:
//   mjpeg  the MJPEG test pattern in an <img> (/stream.mjpg)
//   h264   the H.264 test pattern decoded with WebCodecs onto a <canvas>
//   mse    the same H.264 stream as fMP4 into a <video> through MSE
// against two sluice-stream servers on loopback (one MJPEG, one
// --codec h264, both 640x480 at 30 fps, both running for the whole run so
// every mode sees the same machine load), modes interleaved over --rounds
// rounds (the order rotates), --duration seconds measured each.
//
//   node bench/latency.js [--build DIR] [--rounds N] [--duration S] [--json FILE]
//
// One method for all three modes: a script added to the page reads the block
// code (the frame number the test pattern draws) of the element showing the
// stream, once per animation frame (blockcode.js, the page's own reader),
// and notes Date.now() when a number first appears. The server's publish
// time of every frame number comes from a reader in this process: the
// X-Frame / X-Timestamp-Ms part headers of /stream.mjpg for MJPEG (a
// monotonic clock, put on the wall clock by the smallest arrival - stamp
// difference this reader saw), the 16-byte message header (frame number,
// publish Unix ms) of /ws for H.264. Latency
// of a frame = first seen on screen - published (one machine, one clock).
// It includes the network path, decoding, the player's buffer and the wait
// for the next animation frame (up to 16.7 ms at 60 Hz), not the compositor
// to glass. The page's own latency figure (WebCodecs, MSE) is reported next
// to it.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const L = require(path.join(ROOT, 'tests', 'browser', 'lib.js'));
const WebSocket = require(path.join(ROOT, 'tests', 'node', 'node_modules', 'ws'));

const opt = { build: 'build/release', rounds: 3, duration: 4, json: null };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opt)) { process.stderr.write(`unknown option ${process.argv[i]}\n`); process.exit(2); }
  opt[k] = k === 'build' || k === 'json' ? process.argv[++i] : Number(process.argv[++i]);
}
const SS = path.resolve(ROOT, opt.build, 'sluice-stream');
const log = (...a) => process.stderr.write(a.join(' ') + '\n');

function freePort() {
  return new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
}
async function server(args) {
  const port = await freePort();
  const p = spawn(SS, ['--listen', `127.0.0.1:${port}`, '--size', '640x480', '--fps', '30', '--log-level', 'error', ...args],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  process.on('exit', () => { try { p.kill('SIGTERM'); } catch (e) { /* gone */ } });
  const url = `http://127.0.0.1:${port}`;
  await L.until(`sluice-stream ${args.join(' ')} answers`, 10000, async () => (await L.stats(url)).streams[0].fps_in >= 25, 200);
  return { url, proc: p };
}

/* frame number -> publish ms, from a reader of the stream in this process. */
function mjpegTimes(url, times) {
  const req = http.get(url + '/stream.mjpg', (res) => {
    let buf = '';
    res.setEncoding('latin1');
    res.on('data', (d) => {
      buf += d;
      for (;;) {
        const m = /X-Frame: (\d+)\r\nX-Timestamp-Ms: (\d+)\r\n/.exec(buf);
        if (!m) break;
        /* X-Timestamp-Ms is the server's monotonic clock: its offset to
         * the wall clock is the smallest (arrival - stamp) seen, the
         * delivery of a part over loopback to a reader that keeps up
         * being well under a millisecond at best. */
        const ts = Number(m[2]);
        times.offset = Math.min(times.offset === undefined ? Infinity : times.offset, Date.now() - ts);
        times.set(Number(m[1]), ts);
        buf = buf.slice(m.index + m[0].length);
      }
      if (buf.length > 1 << 20) buf = buf.slice(-4096); /* JPEG bytes between headers */
    });
  });
  return () => req.destroy();
}
function wsTimes(url, times) {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws');
  ws.on('message', (d, bin) => { if (bin && d.length >= 16) times.set(d.readUInt32BE(4), Number(d.readBigUInt64BE(8))); });
  return () => ws.close();
}

/* Added to the page: first sight of each frame number on screen. */
function watcher() {
  window.benchSeen = [];
  let last = -2;
  const el = () => {
    const v = window.sluiceViewer;
    if (!v) return null;
    if (v.mode === 'mjpeg') return document.getElementById('stream');
    if (v.mode === 'mse') return document.getElementById('video');
    return document.getElementById('canvas');
  };
  const loop = () => {
    requestAnimationFrame(loop);
    const e = el();
    if (!e || e.hidden || !window.readBlockCode) return;
    const c = window.readBlockCode(e);
    if (c >= 0 && c !== last) { last = c; window.benchSeen.push([c, Date.now()]); }
  };
  requestAnimationFrame(loop);
}

const q = (xs, p) => { if (!xs.length) return NaN; const v = [...xs].sort((a, b) => a - b); return v[Math.min(v.length - 1, Math.floor(p * v.length))]; };

async function main() {
  if (!fs.existsSync(SS)) throw new Error(`${SS} is missing: build it (cmake --build ${opt.build} --target sluice-stream)`);
  const mj = await server([]);
  const avc = await server(['--codec', 'h264']);
  const times = { mjpeg: new Map(), h264: new Map() };
  const stopRefs = [mjpegTimes(mj.url, times.mjpeg), wsTimes(avc.url, times.h264)];
  const chr = await L.startChromium();
  log(`chromium ${chr.version}; MJPEG ${mj.url}, H.264 ${avc.url}`);
  const modes = [
    { name: 'mjpeg', label: 'MJPEG `<img>`', url: mj.url + '/?mode=mjpeg', ref: times.mjpeg },
    { name: 'h264', label: 'H.264 WebCodecs `<canvas>`', url: avc.url + '/?mode=h264', ref: times.h264 },
    { name: 'mse', label: 'H.264 MSE `<video>`', url: avc.url + '/?mode=mse', ref: times.h264 },
  ];
  const res = Object.fromEntries(modes.map((m) => [m.name, { lat: [], page: [], seen: 0, missing: 0, secs: 0, extra: [] }]));
  for (let r = 0; r < opt.rounds; r++) {
    for (let k = 0; k < modes.length; k++) {
      const m = modes[(k + r) % modes.length];
      const page = await chr.context.newPage();
      await page.addInitScript(watcher);
      await page.goto(m.url);
      await L.until(`${m.name}: playing`, 15000, () => page.evaluate((mode) =>
        window.sluiceViewer.mode === mode && window.sluiceViewer.state === 'playing' && window.sluiceViewer.frames > 10, m.name));
      await L.sleep(2000); /* past the join burst and the player's first catch-up */
      await page.evaluate(() => { window.benchSeen = []; });
      const pageLat = [];
      const t0 = Date.now();
      while (Date.now() - t0 < opt.duration * 1000) {
        await L.sleep(250);
        const v = await page.evaluate(() => window.sluiceViewer.latencyMs);
        if (typeof v === 'number') pageLat.push(v);
      }
      const seen = await page.evaluate(() => window.benchSeen);
      const v = await page.evaluate(() => { const x = window.sluiceViewer; return { seeks: x.seeks, rateMs: x.rateMs, errors: x.errors, dropped: x.dropped }; });
      await page.close();
      await L.sleep(300); /* the last publish times of what was seen */
      const o = res[m.name];
      for (const [code, at] of seen) {
        let pub = m.ref.get(code);
        if (pub === undefined) { o.missing++; continue; }
        if (m.ref.offset !== undefined) pub += m.ref.offset;
        o.lat.push(at - pub);
      }
      o.seen += seen.length; o.secs += (Date.now() - t0) / 1000; o.page.push(...pageLat); o.extra.push(v);
      log(`round ${r + 1} ${m.name}: ${seen.length} frames seen, latency median ${q(o.lat, 0.5)} ms; page says ${q(pageLat, 0.5)} ms; ${JSON.stringify(v)}`);
    }
  }
  stopRefs.forEach((f) => f());
  await chr.close();
  mj.proc.kill('SIGTERM'); avc.proc.kill('SIGTERM');

  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const out = [];
  out.push(`Chromium ${chr.version} (headless, software decoding), 640x480 at 30 fps, ${opt.rounds} interleaved rounds of ` +
    `${opt.duration} s per mode; load average at the end ${load}.`);
  out.push('');
  out.push('| player | frames seen / s | latency median | p90 | max | page\'s own figure, median |');
  out.push('|---|---|---|---|---|---|');
  for (const m of modes) {
    const o = res[m.name];
    const fmt = (x) => (isNaN(x) ? '–' : Math.round(x) + ' ms');
    out.push(`| ${m.label} | ${(o.seen / o.secs).toFixed(1)} | ${fmt(q(o.lat, 0.5))} | ${fmt(q(o.lat, 0.9))} | ${fmt(q(o.lat, 1))} | ` +
      `${m.name === 'mjpeg' ? '–' : fmt(q(o.page, 0.5))} |`);
  }
  const unmatched = modes.map((m) => res[m.name].missing).reduce((a, b) => a + b, 0);
  out.push('');
  out.push(`(frames seen whose publish time the reference reader lacked: ${unmatched}; MSE catch-up: ` +
    `${res.mse.extra.map((x) => `${x.seeks} seeks, ${Math.round(x.rateMs)} ms at >1x`).join('; ')})`);
  process.stdout.write(out.join('\n') + '\n');
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ opt, version: chr.version, res }, null, 1));
}

main().then(() => process.exit(0), (e) => { log('bench latency: ' + (e.stack || e)); process.exit(1); });

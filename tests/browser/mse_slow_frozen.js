// The MSE player of the viewer page (?mode=mse, sluice-stream --codec h264)
// on a slow connection and in a frozen tab.
//
// A. Slow: the page is loaded through a loopback TCP proxy that passes the
//    server's bytes on at SLOW_BPS (40 KB/s, a third of the pattern's
//    ~125 KB/s) and reads from the server only as fast as it sends (at most
//    PROXY_BUF bytes waiting in it), so the server sees a viewer whose
//    connection is slower than the stream. The throttle is a proxy rather
//    than DevTools network emulation because it acts on the TCP connection
//    itself, which is what the server's keyframe policy reacts to; whether
//    emulation throttles an open WebSocket's frames depends on the Chromium
//    version. Checked over SLOW_S seconds: the server skips this viewer to
//    keyframes (its resyncs rise) and the page sees the gaps (keyframes with
//    the gap bit) and keeps playing: video.currentTime and the frames
//    presented advance in every 5 s window, the block code read from the
//    <video> advances, no media error, and no delta fragment arrives
//    without its reference.
//
// B. Frozen: the page as users get it lets its stream go at once when
//    frozen (no viewer on the server) and, shown again, plays on a fresh
//    socket, the picture within MAX_BEHIND frames of live.
//
// C. Frozen with keep=1 (the socket kept, not read) for FROZEN_S seconds: the
//    server stays bounded, the viewer really stalls, and once shown again
//    the page plays near live with no media error (Chromium closes a socket
//    frozen with unread data on resume: the page then reconnects). The
//    bound, every second: the stream's held bytes at most
//    2 x (gop_bytes + 2 x largest frame) + 112 x gop_frames + the viewer's
//    queued bytes + 64 KiB. That is tests/browser/h264_frozen.js's bound for
//    WebCodecs (the GOP, the viewer's queue, the frame in flight and the
//    newest one), with each frame counted twice: a frame that an fMP4
//    viewer was sent also holds its fragment (built once, shared by every
//    fMP4 viewer, freed with the frame), which is the access unit without
//    start codes and parameter sets plus a 112-byte moof and mdat header.
'use strict';

const net = require('net');
const L = require('./lib');

const a = L.args();
const S = a.server;
const SERVER_PORT = Number(new URL(S).port);
const SLOW_BPS = 40 * 1024;
const PROXY_BUF = 16 * 1024;
const SLOW_S = 20;
const FROZEN_S = Number(a['frozen-seconds'] || 20);
const MAX_BEHIND = 30; /* frames: the player's jump threshold (see mse_viewer.js) */
const KiB = 1024;

const viewerState = (page) => page.evaluate(() => {
  const v = window.sluiceViewer, o = {};
  for (const k of Object.keys(v)) if (typeof v[k] !== 'function') o[k] = v[k];
  return o;
});
const videoCode = (page) => page.evaluate(() => window.readBlockCode(document.getElementById('video')));
const stream = async () => (await L.stats(S)).streams[0];
const fmp4Viewers = async () => ((await stream()).viewers_list || []).filter((v) => v.transport === 'ws-fmp4');

/* A loopback proxy to the server that throttles server -> browser. */
function slowProxy(bps) {
  const conns = new Set();
  const srv = net.createServer((c) => {
    const up = net.connect(SERVER_PORT, '127.0.0.1');
    conns.add(c); conns.add(up);
    let q = [], qbytes = 0;
    c.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      q.push(d); qbytes += d.length;
      if (qbytes > PROXY_BUF) up.pause();
    });
    const TICK = 20;
    const t = setInterval(() => {
      let budget = Math.round(bps * TICK / 1000);
      while (budget > 0 && q.length) {
        const d = q[0];
        const n = Math.min(budget, d.length);
        c.write(d.subarray(0, n));
        if (n === d.length) q.shift(); else q[0] = d.subarray(n);
        qbytes -= n; budget -= n;
      }
      if (qbytes <= PROXY_BUF / 2 && up.isPaused()) up.resume();
    }, TICK);
    const end = () => { clearInterval(t); c.destroy(); up.destroy(); conns.delete(c); conns.delete(up); };
    c.on('close', end); up.on('close', end); c.on('error', end); up.on('error', end);
  });
  return new Promise((res) => srv.listen(0, '127.0.0.1', () => res({
    url: `http://127.0.0.1:${srv.address().port}`,
    close: () => { for (const x of conns) x.destroy(); srv.close(); },
  })));
}

L.main('mse_slow_frozen', (SLOW_S + FROZEN_S + 90) * 1000, async () => {
  const st0 = (await L.getJSON(S + '/api/streams')).streams[0];
  L.check(st0.kind === 'h264', `the default stream is ${st0.kind}, not h264`);
  await L.until('the H.264 pattern runs', 10000, async () => (await stream()).fps_in >= 25);
  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);
  const errors = [];

  async function plays(page, what) {
    return L.until(`${what}: the page plays MSE`, 20000, async () => {
      const v = await viewerState(page);
      return v.mode === 'mse' && v.state === 'playing' && v.frames >= 3 ? v : null;
    });
  }
  async function fresh(page, what) {
    const reads = [];
    try {
      return await L.until(`${what}: a picture within ${MAX_BEHIND} frames of live`, 15000, async () => {
        const code = await videoCode(page), seq = (await stream()).seq;
        reads.push(`${code}/${seq}`);
        return code >= 0 && seq >= code && seq - code <= MAX_BEHIND ? { code, seq } : null;
      }, 100);
    } finally {
      L.out(`  ${what}: reads (video code / newest published): ${reads.slice(-10).join(' ')}`);
    }
  }

  /* ---- A: slow connection ---- */
  {
    const px = await slowProxy(SLOW_BPS);
    const page = await chr.context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(px.url + '/?mode=mse');
    await plays(page, 'A');
    const sv0 = await L.until('A: the fMP4 viewer is on the server', 5000, async () => (await fmp4Viewers())[0]);
    const w = [];
    for (let i = 0; i <= SLOW_S; i += 5) {
      if (i) await L.sleep(5000);
      const v = await viewerState(page), code = await videoCode(page);
      const sv = (await fmp4Viewers())[0] || {};
      w.push({ t: i, ct: v.currentTime, pres: v.presented, code, gaps: v.gaps, recv: v.received, resyncs: sv.resyncs, kbps: 0, sent: sv.bytes_sent });
      L.out(`  A t=${i} s: currentTime ${v.currentTime.toFixed(2)}, presented ${v.presented}, video code ${code}, received ${v.received}, ` +
        `gaps ${v.gaps}, seeks ${v.seeks}, ahead ${v.ahead.toFixed(2)} s, errors ${v.errors}, breaks ${v.breaks}; server: ` +
        `resyncs ${sv.resyncs}, bytes_sent ${sv.bytes_sent}, state ${sv.state}, lag ${sv.lag_ms} ms`);
    }
    const v = await viewerState(page);
    const last = w[w.length - 1], first = w[1];
    const rate = (last.sent - first.sent) / (last.t - first.t);
    L.out(`A: server -> viewer ${(rate / 1024).toFixed(1)} KiB/s (throttle ${SLOW_BPS / 1024} KiB/s, stream ${((await stream()).bitrate / 8192).toFixed(1)} KiB/s); ` +
      `resyncs ${sv0.resyncs} -> ${last.resyncs}; page gaps ${last.gaps}, dropped ${v.dropped}, skipped ${v.skipped}`);
    L.check(last.resyncs > sv0.resyncs, 'A: the server never skipped the slow viewer to a keyframe');
    L.check(last.gaps > 0, 'A: the page saw no gap');
    for (let i = 1; i < w.length; i++) {
      L.check(w[i].ct > w[i - 1].ct + 0.5, `A: currentTime stood still between t=${w[i - 1].t} and ${w[i].t} s`);
      L.check(w[i].pres > w[i - 1].pres, `A: no frame presented between t=${w[i - 1].t} and ${w[i].t} s`);
    }
    L.check(last.code > w[1].code && w[1].code >= 0, 'A: the picture does not advance');
    L.check(v.errors === 0 && v.breaks === 0, `A: errors ${v.errors} (${v.lastError}), breaks ${v.breaks}`);
    await page.close();
    px.close();
    await L.until('A: the slow viewer left', 5000, async () => (await fmp4Viewers()).length === 0);
  }

  /* ---- B: frozen, the default page lets go ---- */
  {
    const page = await chr.context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(S + '/?mode=mse');
    await plays(page, 'B');
    await L.until('B: one viewer', 5000, async () => (await fmp4Viewers()).length === 1);
    const before = await viewerState(page);
    const life = await L.lifecycle(chr.context, page);
    await life.freeze();
    const t = Date.now();
    await L.until('B: the frozen page releases its stream', 5000, async () => (await fmp4Viewers()).length === 0, 50);
    L.out(`B: frozen; no viewer after ${Date.now() - t} ms`);
    await L.sleep(3000);
    L.check((await fmp4Viewers()).length === 0, 'B: the frozen page took its stream back');
    await life.activate();
    await life.show();
    await plays(page, 'B resumed');
    const r = await fresh(page, 'B resumed');
    const after = await viewerState(page);
    L.out(`B: resumed: frame ${r.code}, ${r.seq - r.code} behind; ${after.connects - before.connects} new socket(s), errors ${after.errors}`);
    L.check(after.connects > before.connects, 'B: no new socket');
    L.check(after.errors === 0 && after.breaks === 0, `B: errors ${after.errors}, breaks ${after.breaks}`);
    await page.close();
    await L.until('B: the page left', 5000, async () => (await fmp4Viewers()).length === 0);
  }

  /* ---- C: keep=1, frozen holding its socket ---- */
  const page = await chr.context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(S + '/?mode=mse&keep=1');
  await plays(page, 'C');
  const v0 = await L.until('C: one viewer', 10000, async () => {
    const vs = await fmp4Viewers();
    return vs.length === 1 && vs[0].frames_sent > 10 ? vs[0] : null;
  });
  const life = await L.lifecycle(chr.context, page);
  await life.freeze();
  const samples = await L.everySecond(FROZEN_S, async (i) => {
    const st = await stream();
    const v = (st.viewers_list || []).find((x) => x.id === v0.id);
    const x = { t: i, held: st.held, gop: st.gop_bytes, gopFrames: st.gop_frames, largest: st.largest_frame,
      queued: v ? v.queued : -1, sent: v ? v.bytes_sent : -1, state: v ? v.state : 'gone' };
    x.bound = 2 * (x.gop + 2 * x.largest) + 112 * x.gopFrames + Math.max(0, x.queued) + 64 * KiB;
    if (i <= 3 || i % 5 === 0)
      L.out(`  C t=${String(i).padStart(2)} s: held ${x.held} (bound ${x.bound}: 2 x (GOP ${x.gop} + 2 x ${x.largest}) + 112 x ${x.gopFrames} + queued ${x.queued} + 64 KiB), ` +
        `bytes_sent ${x.sent}, ${x.state}`);
    return x;
  });
  L.check(samples.every((x) => x.state !== 'gone'), 'C: the frozen viewer was closed while frozen');
  const late = samples.filter((x) => x.t > FROZEN_S / 2);
  L.check(late[late.length - 1].sent - late[0].sent < 64 * KiB, 'C: the frozen tab kept reading: the freeze did not take');
  L.check(late.every((x) => x.state === 'stalled'), 'C: the server did not report the frozen viewer stalled');
  const over = samples.filter((x) => x.held > x.bound);
  L.check(!over.length, `C: held over its bound at t=${over.map((x) => `${x.t} s (${x.held} > ${x.bound})`).join(', ')}`);
  L.out(`C: over ${FROZEN_S} s frozen: held max ${Math.max(...samples.map((x) => x.held))}, within its bound every second`);
  const before = await viewerState(page);
  await life.activate();
  await life.show();
  await plays(page, 'C resumed');
  const r = await fresh(page, 'C resumed');
  const after = await viewerState(page);
  L.out(`C: resumed: frame ${r.code}, ${r.seq - r.code} behind; sockets ${after.connects - before.connects} new ` +
    `(last close ${JSON.stringify(after.lastClose)}), gaps ${before.gaps} -> ${after.gaps}, errors ${after.errors}, breaks ${after.breaks}`);
  L.check(after.errors === 0 && after.breaks === 0, `C: errors ${after.errors} (${after.lastError}), breaks ${after.breaks}`);
  await page.close();
  L.check(errors.length === 0, `page errors: ${errors.join('; ')}`);
});

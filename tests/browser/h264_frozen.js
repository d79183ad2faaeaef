// The H.264 viewer page (/, sluice-stream --codec h264) in a tab that
// Chrome freezes (DevTools Page.setWebLifecycleState, as for a background
// tab):
//
// A. The page as users get it: frozen, it lets its stream go at once (the
//    server has no viewer); shown again it opens a fresh socket, and the
//    decoder starts at the keyframe the server sends first: not one frame is
//    dropped waiting for a keyframe, no decoder error, and the picture is
//    within MAX_BEHIND frames of live.
//
// B. The page with keep=1 (it keeps its socket while frozen, as a page that
//    does not care would), frozen for FROZEN_S seconds (60) holding a socket
//    it does not read. Checked:
//    - the tab really stopped reading: the viewer's bytes_sent stops rising
//      and the server reports it stalled (else nothing below would mean
//      anything);
//    - the server stays bounded: every second, the stream's held bytes are at
//      most gop_bytes + the viewer's queued bytes + 2 x largest frame + 64 KiB.
//      The hub keeps one copy of each frame, and with one viewer a frame is
//      held only while the GOP cache (the frames since the last IDR, for
//      joining viewers) or that viewer's queue holds it, plus the newest frame
//      on its way in; the viewer's queue stays within its send_max; the
//      library's held bytes and the RSS stay flat (max - min within
//      2 x the largest GOP + 2 x largest frame + 256 KiB, and 2 MiB), and the
//      kernel's send queue of that socket stays under 1 MiB
//      (TCP_NOTSENT_LOWAT);
//    - once the tab is active and shown again, the page shows a picture
//      within MAX_BEHIND frames of live, with no decoder error and no delta
//      frame whose reference it did not get. Chromium (156) itself closes the
//      WebSocket of a page that was frozen with unread data when the page
//      resumes (the server gets a close, the page a 1006), so the page
//      reconnects and starts at the keyframe the server sends first; should
//      the socket survive, the skip on it must be flagged (the gap bit).
//
// C. The same skip on one socket, which B cannot show in Chromium: a
//    WebSocket client (npm ws) that stops reading for STALL_S seconds and
//    reads again gets, after the frames that were on their way, a keyframe
//    with the gap bit, and never a delta frame that does not follow the
//    frame before it.
'use strict';

const L = require('./lib');

const a = L.args();
const S = a.server;
const FROZEN_S = Number(a['frozen-seconds'] || 60);
const SERVER_PORT = Number(new URL(S).port);
const MAX_BEHIND = 10;
const STALL_S = 10;
const KiB = 1024, MiB = 1024 * 1024;
const fmt = (n) => (n >= MiB ? (n / MiB).toFixed(2) + ' MiB' : n >= KiB ? (n / KiB).toFixed(1) + ' KiB' : n + ' B');

const viewerState = (page) => page.evaluate(() => {
  const v = window.sluiceViewer, o = {};
  for (const k of Object.keys(v)) if (typeof v[k] !== 'function') o[k] = v[k];
  return o;
});
const canvasCode = (page) => page.evaluate(() => window.readBlockCode(document.getElementById('canvas')));

L.main('h264_frozen', (FROZEN_S + 100) * 1000, async () => {
  const st0 = (await L.getJSON(S + '/api/streams')).streams[0];
  L.check(st0.kind === 'h264', `the default stream is ${st0.kind}, not h264`);
  await L.until('the H.264 pattern runs at ~30 fps', 10000, async () => (await L.stats(S)).streams[0].fps_in >= 25);
  const stream = async () => (await L.stats(S)).streams[0];
  /* The page's viewers: WebSocket ones (a /stream.h264 reader is not it). */
  const wsViewers = async () => ((await stream()).viewers_list || []).filter((v) => v.transport === 'ws').length;
  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);

  /* The picture is fresh: a read of the canvas within MAX_BEHIND frames of
   * the newest frame published right after it. */
  async function fresh(page, what) {
    const reads = [];
    try {
      return await L.until(`${what}: a picture within ${MAX_BEHIND} frames of live`, 15000, async () => {
        const code = await canvasCode(page);
        const seq = (await stream()).seq;
        reads.push(`${code}/${seq}`);
        return code >= 0 && seq - code <= MAX_BEHIND && seq >= code ? { code, seq } : null;
      }, 100);
    } finally {
      L.out(`  ${what}: reads (canvas code / newest published): ${reads.slice(-12).join(' ')}`);
    }
  }
  async function plays(page, what) {
    await L.until(`${what}: the page plays H.264`, 15000, async () => {
      const v = await viewerState(page);
      return v.mode === 'h264' && v.state === 'playing' && v.frames >= 3;
    });
  }

  /* ---- A: the page lets go when frozen, and resumes at a keyframe ---- */
  {
    const page = await chr.context.newPage();
    await page.goto(S + '/');
    await plays(page, 'A');
    await L.until('A: the server has one viewer', 5000, async () => (await wsViewers()) === 1);
    const before = await viewerState(page);
    const life = await L.lifecycle(chr.context, page);
    await life.freeze();
    const t = Date.now();
    await L.until('A: the frozen page releases its stream', 5000, async () => (await wsViewers()) === 0, 50);
    L.out(`A: frozen; 0 viewers on the server after ${Date.now() - t} ms`);
    await L.sleep(3000);
    L.check((await wsViewers()) === 0, 'A: the frozen page took its stream back');
    await life.activate();
    await life.show();
    await plays(page, 'A resumed');
    const r = await fresh(page, 'A resumed');
    const after = await viewerState(page);
    L.out(`A: resumed after ${Date.now() - t} ms: frame ${r.code}, ${r.seq - r.code} behind; ` +
      `${after.connects - before.connects} new socket(s), skipped ${after.skipped - before.skipped}, ` +
      `keyframes ${before.keyframes} -> ${after.keyframes}, errors ${after.errors}`);
    L.check(after.connects > before.connects, 'A: the page did not open a new socket');
    L.check(after.skipped === before.skipped, 'A: the fresh socket did not start at a keyframe');
    L.check(after.errors === 0 && after.breaks === 0, `A: decoder errors ${after.errors}, breaks ${after.breaks}`);
    await page.close();
    await L.until('A: the page left', 5000, async () => (await wsViewers()) === 0);
  }

  /* ---- B: keep=1, frozen while holding its socket ------------------ */
  const page = await chr.context.newPage();
  await page.goto(S + '/?keep=1');
  await plays(page, 'B');
  const v0 = await L.until('B: one viewer', 10000, async () => {
    const vs = ((await stream()).viewers_list || []).filter((v) => v.transport === 'ws');
    return vs.length === 1 && vs[0].frames_sent > 10 ? vs[0] : null;
  });
  const peerPort = L.portOf(v0.peer);
  L.check(L.tcpQueues(peerPort, SERVER_PORT), `B: no browser socket ${peerPort} -> ${SERVER_PORT} in /proc/net/tcp`);
  const before = await viewerState(page);
  L.out(`B: viewer ${v0.id} from ${v0.peer} (${v0.transport}, policy ${v0.policy}, send_max ${fmt(v0.send_max)}): ` +
    `${v0.frames_sent} frames sent while visible`);

  const life = await L.lifecycle(chr.context, page);
  await life.freeze();
  const samples = await L.everySecond(FROZEN_S, async (i) => {
    const s = await L.stats(S), st = s.streams[0];
    const v = (st.viewers_list || []).find((x) => x.id === v0.id);
    const q = L.tcpQueues(SERVER_PORT, peerPort);
    const x = {
      t: i, held: st.held, gop: st.gop_bytes, gopFrames: st.gop_frames, largest: st.largest_frame,
      lib: s.memory.held, rss: s.rss_bytes, sent: v ? v.bytes_sent : -1, state: v ? v.state : 'gone',
      queued: v ? v.queued : -1, sendMax: v ? v.send_max : -1, lag: v ? v.lag_ms : -1, tx: q ? q.tx : -1,
    };
    x.bound = x.gop + Math.max(0, x.queued) + 2 * x.largest + 64 * KiB;
    if (i <= 5 || i % 10 === 0 || a.verbose)
      L.out(`  t=${String(i).padStart(2)} s  stream held ${fmt(x.held)} (bound ${fmt(x.bound)}: GOP ${x.gopFrames} frames ` +
        `${fmt(x.gop)} + queued ${fmt(x.queued)} + 2 x ${fmt(x.largest)} + 64 KiB)  library ${fmt(x.lib)}  rss ${fmt(x.rss)}  ` +
        `bytes_sent ${x.sent}  ${x.state}  lag ${x.lag} ms  kernel tx_queue ${fmt(x.tx)}`);
    return x;
  });

  /* It really stopped reading. */
  L.check(samples.every((x) => x.state !== 'gone'), 'B: the frozen viewer was closed while frozen');
  const late = samples.filter((x) => x.t > Math.max(10, FROZEN_S - 20));
  const sentRise = late[late.length - 1].sent - late[0].sent;
  L.out(`B: bytes_sent rose by ${sentRise} over the last ${late.length} s; stalled in ${samples.filter((x) => x.state === 'stalled').length} of ${samples.length} samples`);
  L.check(sentRise < 64 * KiB, `B: the frozen tab kept reading (${sentRise} bytes in ${late.length} s): the freeze did not take`);
  L.check(late.every((x) => x.state === 'stalled'), 'B: the server did not report the frozen viewer stalled');

  /* Bounded. */
  const over = samples.filter((x) => x.held > x.bound);
  L.check(!over.length, `B: stream held over its bound at t=${over.map((x) => `${x.t} s (${x.held} > ${x.bound})`).join(', ')}`);
  const qOver = samples.filter((x) => x.sendMax > 0 && x.queued > x.sendMax);
  L.check(!qOver.length, `B: the viewer's queue passed its send_max at t=${qOver.map((x) => x.t).join(', ')}`);
  const span = (k) => Math.max(...samples.map((x) => x[k])) - Math.min(...samples.map((x) => x[k]));
  const gopMax = Math.max(...samples.map((x) => x.gop)), largest = Math.max(...samples.map((x) => x.largest));
  const libBound = 2 * gopMax + 2 * largest + 256 * KiB;
  const settled = samples.filter((x) => x.t >= 10);
  const rssSpan = Math.max(...settled.map((x) => x.rss)) - Math.min(...settled.map((x) => x.rss));
  const txMax = Math.max(...samples.map((x) => x.tx));
  L.out(`B: over ${FROZEN_S} s: stream held max ${fmt(Math.max(...samples.map((x) => x.held)))}, GOP max ${fmt(gopMax)}, ` +
    `largest frame ${fmt(largest)}; library held max-min ${fmt(span('lib'))} (bound ${fmt(libBound)}), ` +
    `rss max-min from t=10 s ${fmt(rssSpan)} (bound 2 MiB), kernel tx_queue max ${fmt(txMax)} (bound 1 MiB)`);
  L.check(span('lib') <= libBound, `B: library held varied by ${span('lib')} bytes`);
  L.check(rssSpan < 2 * MiB, `B: RSS varied by ${rssSpan} bytes`);
  L.check(samples.every((x) => x.tx >= 0) && txMax < MiB, `B: the kernel send queue reached ${txMax} bytes`);

  /* Resume on the same socket: fresh, decodable. */
  await life.activate();
  await life.show();
  const tResume = Date.now();
  await plays(page, 'B resumed');
  const r = await fresh(page, 'B resumed');
  const ms = Date.now() - tResume;
  const after = await viewerState(page);
  const v1 = ((await stream()).viewers_list || []).find((x) => x.id === v0.id);
  L.out(`B: resumed: fresh after ${ms} ms (frame ${r.code}, ${r.seq - r.code} behind); page: received ` +
    `${after.received - before.received}, decoded ${after.decoded - before.decoded}, gaps ${before.gaps} -> ${after.gaps}, ` +
    `skipped ${after.skipped}, breaks ${after.breaks}, errors ${after.errors}, sockets ${after.connects - before.connects} new; ` +
    `server viewer: ${v1 ? JSON.stringify({ state: v1.state, drops: v1.drops, resyncs: v1.resyncs }) : 'gone'}`);
  L.check(after.errors === 0, `B: ${after.errors} decoder errors (${after.lastError})`);
  L.check(after.breaks === 0, `B: ${after.breaks} delta frames arrived without their reference`);
  if (after.connects === before.connects) {
    L.out('B: the socket survived the freeze');
    L.check(after.gaps > before.gaps, 'B: the server did not flag the skip (no keyframe with the gap bit)');
    L.check(v1 && v1.state === 'active', 'B: the server viewer did not become active again');
  } else {
    L.out(`B: the browser closed the frozen socket on resume (${JSON.stringify(after.lastClose)}); the page reconnected`);
    L.check(after.lastClose && after.skipped === before.skipped,
      'B: the new socket did not start at a keyframe');
  }
  await page.close();

  /* ---- C: a client that stops reading and reads again ------------- */
  const WebSocket = require('../node/node_modules/ws');
  const ws = new WebSocket(S.replace(/^http/, 'ws') + '/ws');
  const got = [];
  let cfgMsg = null, paused = false;
  ws.on('message', (d, bin) => {
    if (!bin) { cfgMsg = JSON.parse(d.toString()); return; }
    got.push({ seq: d.readUInt32BE(4), key: (d[1] & 1) !== 0, gap: (d[1] & 2) !== 0, type: d[0], after: paused });
  });
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  await L.until('C: frames arrive', 5000, () => got.length >= 30);
  ws._socket.pause(); /* no more reads: the kernel buffers fill, the server sees a stall */
  paused = true;
  const nPaused = got.length;
  await L.sleep(STALL_S * 1000);
  const vs = ((await stream()).viewers_list || []).filter((v) => v.transport === 'ws');
  L.out(`C: after ${STALL_S} s not reading: server viewer ${vs.map((v) => `${v.state}, queued ${fmt(v.queued)}, lag ${v.lag_ms} ms`).join('; ')}`);
  ws._socket.resume();
  await L.until('C: live frames after the skip', 10000, () => got.slice(nPaused).some((f) => f.gap) && got.length - got.findIndex((f) => f.gap) > 30);
  ws.close();
  const firstGap = got.findIndex((f) => f.gap);
  const badBreaks = got.filter((f, i) => i > 0 && !f.key && f.seq !== got[i - 1].seq + 1);
  L.out(`C: config ${JSON.stringify(cfgMsg)}; ${got.length} frames, first ${got[0].seq} (key ${got[0].key}); ` +
    `skip ${got[firstGap - 1].seq} -> ${got[firstGap].seq} (key ${got[firstGap].key}, gap bit) ` +
    `after ${firstGap - nPaused} frames that were on their way; deltas not following their predecessor: ${badBreaks.length}`);
  L.check(cfgMsg && cfgMsg.type === 'config' && cfgMsg.codec, 'C: no config message before the frames');
  L.check(got[0].key, 'C: the first frame was not a keyframe');
  L.check(got.every((f) => f.type === 1), 'C: a message that is not an H.264 access unit');
  L.check(got.every((f) => !f.gap || f.key), 'C: a gap on a delta frame');
  L.check(got[firstGap].seq > got[firstGap - 1].seq + 1, 'C: the gap bit without a skip');
  L.check(!badBreaks.length, `C: delta frames without their reference: ${badBreaks.map((f) => f.seq).join(', ')}`);
});

// Acceptance scenario 2 (docs: /work/shared/DESIGN.md), the case the
// project exists for: a user's own page, on another origin, holding only
//   <img src="http://SERVER/stream.mjpg">
// is frozen the way Chrome freezes a background tab (DevTools
// Page.setWebLifecycleState), for FROZEN_S seconds (60), against a server
// with its default settings (640x480, 30 fps test pattern). Checked:
//   - the tab really stopped reading: the viewer's bytes_sent stops rising
//     and the server reports it "stalled" (else the freeze was a no-op and
//     nothing below would mean anything);
//   - the server stays flat meanwhile: library held and allocated bytes
//     (max - min < 2 x largest frame + 256 KiB) and RSS (< 2 MiB);
//   - the kernel's send queue of that socket stays small (< 1 MiB, where
//     Linux would let it reach 4 MiB) and stops growing;
//   - the dashboard, opened meanwhile in another tab, shows that viewer as
//     stalled with a lag > 1 s (screenshot: ARTIFACTS/dashboard.png);
//   - once the tab is active and shown again, the frame it shows is within
//     5 frames of the newest published one within 1 s.
'use strict';

const path = require('path');
const L = require('./lib');

const a = L.args();
const S = a.server;
const FROZEN_S = Number(a['frozen-seconds'] || 60);
const ARTIFACTS = a.artifacts || path.join(__dirname, '..', '..', 'build', 'artifacts');
const SERVER_PORT = Number(new URL(S).port);
const KiB = 1024, MiB = 1024 * 1024;
const fmt = (n) => (n >= MiB ? (n / MiB).toFixed(2) + ' MiB' : n >= KiB ? (n / KiB).toFixed(1) + ' KiB' : n + ' B');

L.main('frozen_tab', (FROZEN_S + 70) * 1000, async () => {
  /* The server runs with its defaults. */
  const streams = await L.getJSON(S + '/api/streams');
  const st0 = streams.streams[0];
  L.out(`server defaults: ${st0.width}x${st0.height}, source ${st0.source}`);
  L.check(st0.width === 640 && st0.height === 480, 'not the default 640x480 pattern');
  await L.until('the pattern runs at ~30 fps', 10000, async () => (await L.stats(S)).streams[0].fps_in >= 25);

  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);
  const bare = await L.staticServer(`<!doctype html>\n<title>my camera</title>\n<img src="${S}/stream.mjpg">\n`);
  const page = await chr.context.newPage();
  await page.goto(bare.url);
  L.check(new URL(bare.url).port !== String(SERVER_PORT), 'the page must come from another origin');
  L.check(await page.evaluate(() => document.scripts.length === 0 && document.images.length === 1),
    'the bare page holds more than one <img>');

  /* Playing: the picture is there and the server feeds one mjpeg viewer. */
  await L.until('the <img> shows the stream', 15000, () =>
    page.evaluate(() => document.querySelector('img').naturalWidth === 640));
  const v0 = await L.until('one mjpeg viewer', 10000, async () => {
    const vs = L.mjpegViewers(await L.stats(S));
    return vs.length === 1 && vs[0].frames_sent > 10 ? vs[0] : null;
  });
  const peerPort = L.portOf(v0.peer);
  L.check(L.tcpQueues(peerPort, SERVER_PORT), `no browser socket ${peerPort} -> ${SERVER_PORT} in /proc/net/tcp`);
  L.out(`viewer ${v0.id} from ${v0.peer}: ${v0.frames_sent} frames sent while visible`);

  /* Freeze, and sample every second. */
  const life = await L.lifecycle(chr.context, page);
  await life.freeze();
  const tFreeze = Date.now();
  const dash = dashboard(chr, v0.id);
  dash.catch(() => {}); /* awaited below */
  const samples = await L.everySecond(FROZEN_S, async (i) => {
    const s = await L.stats(S);
    const v = L.mjpegViewers(s).find((x) => x.id === v0.id);
    const q = L.tcpQueues(SERVER_PORT, peerPort), qb = L.tcpQueues(peerPort, SERVER_PORT);
    const x = {
      t: i, held: s.memory.held, total: s.memory.lib_total, rss: s.rss_bytes,
      sent: v ? v.bytes_sent : -1, state: v ? v.state : 'gone', lag: v ? v.lag_ms : -1,
      queued: v ? v.queued : -1, tx: q ? q.tx : -1, rxb: qb ? qb.rx : -1,
    };
    if (i <= 10 || i % 10 === 0) {
      L.out(`  t=${String(i).padStart(2)} s  held ${fmt(x.held)}  lib_total ${fmt(x.total)}  rss ${fmt(x.rss)}  ` +
        `bytes_sent ${x.sent}  ${x.state}  lag ${x.lag} ms  queued ${x.queued}  ` +
        `kernel: server tx_queue ${fmt(x.tx)}, browser rx_queue ${fmt(x.rxb)}`);
    }
    return x;
  }, tFreeze);

  /* The tab really stopped reading. */
  L.check(samples.every((x) => x.state !== 'gone'), 'the frozen viewer was closed while frozen');
  const SETTLE = 10; /* seconds for the buffers on the way to fill */
  const after = samples.filter((x) => x.t >= SETTLE);
  const sentRise = after[after.length - 1].sent - after[0].sent;
  L.out(`bytes_sent from t=${SETTLE} s to t=${FROZEN_S} s: +${sentRise} (${after[0].sent} -> ${after[after.length - 1].sent})`);
  L.check(sentRise === 0, `the frozen page kept reading (+${sentRise} bytes): the freeze did not take`);
  const firstStalled = samples.find((x) => x.state === 'stalled');
  L.check(firstStalled && firstStalled.t <= 15, 'the viewer was not reported stalled within 15 s');
  L.check(samples.filter((x) => x.t >= firstStalled.t).every((x) => x.state === 'stalled'),
    'the viewer did not stay stalled');
  L.out(`stalled from t=${firstStalled.t} s, lag at the end ${samples[samples.length - 1].lag} ms`);

  /* The server stayed flat. */
  const largest = (await L.stats(S)).streams[0].largest_frame;
  const span = (k, xs = samples) => Math.max(...xs.map((x) => x[k])) - Math.min(...xs.map((x) => x[k]));
  const bound = 2 * largest + 256 * KiB;
  L.out(`largest frame ${fmt(largest)}; over ${FROZEN_S} s frozen: held max-min ${fmt(span('held'))}, ` +
    `lib_total max-min ${fmt(span('total'))} (bound ${fmt(bound)}), rss max-min ${fmt(span('rss'))} (bound 2 MiB)`);
  L.check(span('held') < bound, `library held varied by ${span('held')} bytes`);
  L.check(span('total') < bound, `library allocated total varied by ${span('total')} bytes`);
  L.check(span('rss') < 2 * MiB, `RSS varied by ${span('rss')} bytes`);

  /* The kernel's send queue to the tab stayed small and stopped growing. */
  const txMax = Math.max(...samples.map((x) => x.tx));
  const txSettled = Math.max(...after.filter((x) => x.t <= 20).map((x) => x.tx));
  const txLate = Math.max(...samples.filter((x) => x.t > FROZEN_S - 20).map((x) => x.tx));
  L.out(`server tx_queue: max ${fmt(txMax)}, t=${SETTLE}..20 s max ${fmt(txSettled)}, last 20 s max ${fmt(txLate)}; ` +
    `browser rx_queue at the end ${fmt(samples[samples.length - 1].rxb)}`);
  L.check(samples.every((x) => x.tx >= 0), 'the server socket vanished from /proc/net/tcp');
  /* Linux lets a send buffer grow to 4 MiB; the design caps the unsent
   * part of a stream's socket with TCP_NOTSENT_LOWAT (128 KiB), and a tab
   * that stopped reading has acknowledged all it received, so what is
   * queued is that unsent part, plus at most one write past the mark. */
  L.check(txMax < 1 * MiB, `the kernel send queue reached ${txMax} bytes (TCP_NOTSENT_LOWAT not in force?)`);
  L.check(txLate <= txSettled + 64 * KiB, `the kernel send queue kept growing: ${txSettled} -> ${txLate}`);

  /* The dashboard showed it. */
  const dashResult = await dash;
  L.out(`dashboard: row ${dashResult.id} data-state=${dashResult.state}, lag ${dashResult.lag} ms, ` +
    `screenshot ${dashResult.file}`);

  /* Resume: active and shown again. The first frame shown is (nearly) live. */
  await life.activate();
  await life.show();
  const tResume = Date.now();
  /* The reader comes in only now: the page had no script while frozen. */
  await page.addScriptTag({ url: S + '/blockcode.js' });
  /* Each read: the newest frame number when the read starts, the frame the
   * tab shows (a capture of its surface, taken at some moment after that),
   * and the newest number when the read is done. The shown frame is fresh
   * when it is at most 5 frames older than the frame that was live when
   * the read started; such a read must start within 1 s of the resume (the
   * capture itself can take long on a loaded machine, so its end is only
   * reported: counted against it, the lag is an upper bound). A server
   * that sent the tab a backlog, or resumed it late, shows an old frame. */
  const reads = [];
  let res;
  try {
    res = await L.until('the tab shows a frame within 5 frames of live', 5000, async () => {
      const start = Date.now() - tResume;
      const seqBefore = (await L.stats(S)).streams[0].seq;
      const code = await L.shownCode(page, life.cdp, 'img');
      const seqAfter = (await L.stats(S)).streams[0].seq;
      const r = { start, end: Date.now() - tResume, code, seqBefore, seqAfter, lag: seqBefore - code };
      reads.push(r);
      return code >= 0 && r.lag <= 5 ? r : null;
    }, 50);
  } finally {
    for (const r of reads)
      L.out(`  read at +${r.start}..${r.end} ms after resume: shown frame ${r.code}, live ${r.seqBefore}..${r.seqAfter}: ` +
        `${Math.max(0, r.lag)}..${r.seqAfter - r.code} frames behind`);
  }
  L.out(`resumed: the read started ${res.start} ms after resume showed frame ${res.code}, ` +
    `${Math.max(0, res.lag)} frames behind live (at most ${res.seqAfter - res.code} by the end of the read, ${res.end} ms)`);
  L.check(res.start <= 1000, `the tab showed a stale frame until ${res.start} ms after resume`);
  const v1 = L.mjpegViewers(await L.stats(S)).find((x) => x.id === v0.id);
  L.check(v1 && v1.state === 'active' && v1.bytes_sent > after[after.length - 1].sent,
    'the viewer did not resume reading');
  bare.close();
});

/* Opens /dashboard in another tab while the first one is frozen, waits for
 * the frozen viewer's row to say stalled with a lag > 1 s, and saves a
 * screenshot. */
async function dashboard(chr, id) {
  const p = await chr.context.newPage();
  await p.goto(S + '/dashboard');
  const vis = await p.evaluate(() => document.visibilityState);
  L.check(vis === 'visible', `the dashboard tab is ${vis}`);
  const row = `tr[data-viewer-id="${id}"]`;
  const r = await L.until('the dashboard shows the frozen viewer stalled with lag > 1000 ms', 30000, () =>
    p.evaluate((sel) => {
      const tr = document.querySelector(sel);
      if (!tr) return null;
      const lag = Number(tr.querySelector('td.lag').textContent);
      return tr.dataset.state === 'stalled' && lag > 1000 ? { id: tr.dataset.viewerId, state: tr.dataset.state, lag } : null;
    }, row), 250);
  L.mkdirp(ARTIFACTS);
  const file = path.join(ARTIFACTS, 'dashboard.png');
  await p.screenshot({ path: file, fullPage: true, timeout: 15000 });
  L.check(require('fs').statSync(file).size > 10000, 'the dashboard screenshot is empty');
  r.file = file;
  return r;
}

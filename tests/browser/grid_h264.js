// /grid with H.264 and MJPEG streams of one server, in a real Chromium:
//   - every tile plays over ONE WebSocket (/mux): the block code read back
//     from each tile's canvas with the page's own readBlockCode advances,
//     H.264 tiles (decoded with WebCodecs through h264dec.js) and MJPEG
//     tiles alike, and the server sees one connection carrying one
//     subscription per tile;
//   - the H.264 tiles decode with no decoder error and no reset, no delta
//     frame arrives without its reference (breaks), the codec is the one
//     the server announces, and the code on the canvas is the number of
//     the access unit drawn (the tile's seq), within MAX_BEHIND frames of
//     the newest the server published;
//   - an H.264 tile scrolled off screen unsubscribes (its decoder closed)
//     and plays again, from a keyframe and with no error, when scrolled
//     back.
// The server runs with --codec h264 --stream jpeg=mjpeg:testpattern
// --demo-streams 2 --fps 15: default, demo1 and demo2 are the H.264 test
// pattern, jpeg the MJPEG one.
'use strict';

const L = require('./lib');

const a = L.args();
const S = a.server;
const SPAN_MS = 3000;
const MAX_BEHIND = 15; /* frames: one second at 15 fps */

const tiles = (page) => page.evaluate(() => window.sluiceGrid.tiles.map((t) => ({
  stream: t.stream, kind: t.kind, subscribed: t.subscribed, id: t.id, frames: t.frames, code: t.code, seq: t.seq,
  fps: +t.fps.toFixed(1), lagMs: t.lagMs, decoded: t.decoded, errors: t.errors, resyncs: t.resyncs,
  breaks: t.breaks, skipped: t.skipped, keyframes: t.keyframes, received: t.received, codec: t.codec,
  lastError: t.lastError, unsupported: t.unsupported, canvas: window.readBlockCode(t.canvas),
})));
const codes = (page) => page.evaluate(() =>
  [...document.querySelectorAll('.tile canvas')].map((c) => window.readBlockCode(c)));

L.main('grid_h264', 90000, async () => {
  const list = (await L.getJSON(S + '/api/streams')).streams;
  L.out(`streams: ${list.map((s) => `${s.name} ${s.kind}`).join(', ')}`);
  const avc = list.filter((s) => s.kind === 'h264'), jpeg = list.filter((s) => s.kind === 'mjpeg');
  L.check(avc.length >= 2 && jpeg.length >= 1, `expected H.264 and MJPEG streams, got ${avc.length} and ${jpeg.length}`);
  const codecs = await L.until('every H.264 stream has its codec', 15000, async () => {
    const l = (await L.getJSON(S + '/api/streams')).streams;
    const m = {};
    for (const s of l) if (s.kind === 'h264') { if (!s.codec) return null; m[s.name] = s.codec; }
    return m;
  });
  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);
  const page = await chr.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.setViewportSize({ width: 1400, height: 1100 }); /* every tile on screen */
  await page.goto(`${S}/grid?keep=1`);

  const n = list.length;
  let seen = null;
  await L.until(`${n} grid tiles play`, 20000, async () => {
    const v = seen = await tiles(page);
    return v.length === n && v.every((t) => t.frames >= 3 && t.code >= 0 && (t.kind !== 'h264' || t.decoded >= 3));
  }).catch((e) => { L.out(`tiles: ${JSON.stringify(seen)}`); throw e; });
  const g0 = await codes(page);
  await L.sleep(SPAN_MS);
  const g1 = await codes(page);
  const info = await tiles(page);
  const adv = g1.filter((c, i) => c >= 0 && c > g0[i]).length;
  L.out(`/grid: codes ${JSON.stringify(g0)} -> ${JSON.stringify(g1)}: ${adv} of ${n} advance`);
  for (const t of info)
    L.out(`  ${t.stream} ${t.kind}: ${t.frames} drawn, ${t.fps} fps, lag ${t.lagMs} ms` + (t.kind === 'h264'
      ? `, ${t.codec}, received ${t.received}, decoded ${t.decoded}, keyframes ${t.keyframes}, errors ${t.errors}, ` +
        `resets ${t.resyncs}, breaks ${t.breaks}, skipped ${t.skipped}` : ''));
  L.check(adv === n, `only ${adv} of ${n} grid tiles advance`);
  for (const t of info) {
    const s = list.find((x) => x.name === t.stream);
    L.check(t.kind === s.kind, `tile ${t.stream} plays as ${t.kind}, the stream is ${s.kind}`);
    if (t.kind !== 'h264') continue;
    L.check(t.codec === codecs[t.stream], `tile ${t.stream} decodes ${t.codec}, the server says ${codecs[t.stream]}`);
    L.check(t.errors === 0 && t.resyncs === 0, `tile ${t.stream}: decoder errors ${t.errors}, resets ${t.resyncs} (${t.lastError})`);
    L.check(t.breaks === 0, `tile ${t.stream}: ${t.breaks} delta frames arrived without their reference`);
    L.check(!t.unsupported, `tile ${t.stream}: ${t.unsupported}`);
  }

  /* The code on each H.264 canvas is the frame drawn, and close to live. */
  for (let i = 0; i < 5; i++) {
    const v = await tiles(page);
    const st = await L.stats(S);
    for (const t of v.filter((x) => x.kind === 'h264')) {
      const seq = st.streams.find((s) => s.name === t.stream).seq;
      L.check(t.canvas >= 0 && t.canvas === t.seq, `tile ${t.stream}: canvas code ${t.canvas}, frame drawn ${t.seq}`);
      L.check(seq - t.canvas >= 0 && seq - t.canvas <= MAX_BEHIND,
        `tile ${t.stream}: frame ${t.canvas} shown while ${seq} is the newest published`);
    }
    await L.sleep(200);
  }

  /* One connection, one subscription per tile. */
  const st1 = await L.stats(S);
  const peers = new Set();
  let subs = 0;
  for (const s of st1.streams) for (const v of s.viewers_list || []) { peers.add(v.peer); subs++; }
  L.out(`server: ${subs} subscriptions from ${peers.size} connection(s)`);
  L.check(subs === n && peers.size === 1, `${subs} subscriptions from ${peers.size} connections`);

  /* An H.264 tile off screen unsubscribes, and plays again when back. */
  const name = avc[0].name;
  await page.evaluate((nm) => {
    const t = window.sluiceGrid.tiles.find((x) => x.stream === nm);
    document.getElementById('grid').style.paddingTop = '0';
    t.el.style.position = 'relative'; t.el.style.top = '5000px'; /* scrolled out of the viewport */
  }, name);
  await L.until(`tile ${name} unsubscribes off screen`, 5000, async () => {
    const t = (await tiles(page)).find((x) => x.stream === name);
    const s = (await L.stats(S)).streams.find((x) => x.name === name);
    return !t.id && (s.viewers_list || []).length === 0;
  });
  const before = (await tiles(page)).find((x) => x.stream === name);
  await page.evaluate((nm) => { window.sluiceGrid.tiles.find((x) => x.stream === nm).el.style.top = '0'; }, name);
  const back = await L.until(`tile ${name} plays again on screen`, 10000, async () => {
    const t = (await tiles(page)).find((x) => x.stream === name);
    return t.id && t.frames >= before.frames + 3 && t.canvas >= 0 && t.canvas > before.code ? t : null;
  });
  L.out(`${name} back on screen: frame ${back.canvas} (was ${before.code}), keyframes ${back.keyframes}, ` +
    `errors ${back.errors}, resets ${back.resyncs}, breaks ${back.breaks}`);
  L.check(back.errors === 0 && back.resyncs === 0 && back.breaks === 0,
    `tile ${name} after coming back: errors ${back.errors}, resets ${back.resyncs}, breaks ${back.breaks}`);
  L.check(back.keyframes > before.keyframes, `tile ${name} came back without a keyframe`);
  L.check(errors.length === 0, `page errors: ${errors.join('; ')}`);
  await page.close();
});

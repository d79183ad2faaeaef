// Twelve streams of one server in a real Chromium, two ways:
//
//   1. the control: a page (of another origin) with 12 MJPEG <img> tags to
//      the server. Chromium opens at most 6 HTTP/1.1 connections per host,
//      so the tags past the sixth never get a picture: at most 6 of them
//      advance, read from the frame codes in the pictures (a capture of the
//      page decoded by the server's own blockcode.js);
//   2. /grid with the same 12 streams over ONE WebSocket (/mux): all 12
//      tiles decode and advance, read from the frame codes drawn on their
//      canvases, and the server sees one connection carrying 12
//      subscriptions.
//
// The server runs with --demo-streams 11 (default + demo1..demo11).
'use strict';

const L = require('./lib');

const a = L.args();
const S = a.server;
const SPAN_MS = 3000;

L.main('grid', 90000, async () => {
  const st0 = await L.getJSON(S + '/api/streams');
  const names = st0.streams.map((s) => s.name);
  L.check(names.length === 12, `the server has ${names.length} streams, expected 12`);
  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);

  /* ---- 1. the control: 12 <img> tags ------------------------------------ */
  const html = '<!doctype html><style>img{width:640px;height:480px;display:inline-block;vertical-align:top}</style>' +
    st0.streams.map((s, i) => `<img id="i${i}" src="${S}${s.base}stream.mjpg">`).join('');
  const site = await L.staticServer(html);
  const page = await chr.context.newPage();
  await page.setViewportSize({ width: 2600, height: 1500 }); /* 4 x 3 at natural size */
  const cdp = await chr.context.newCDPSession(page);
  await page.goto(site.url, { waitUntil: 'domcontentloaded' }); /* 'load' never comes: six images wait forever */
  /* The reader's text, not its URL: a seventh request to the server would
   * wait behind the six streams like the images do. */
  const bc = await (await fetch(S + '/blockcode.js')).text();
  await page.addScriptTag({ content: bc });
  await L.sleep(3000); /* the first six start */
  const read = async () => {
    const v = [];
    for (let i = 0; i < 12; i++) v.push(await L.shownCode(page, cdp, '#i' + i).catch(() => -1));
    return v;
  };
  const c0 = await read();
  await L.sleep(SPAN_MS);
  const c1 = await read();
  const loaded = await page.evaluate(() => [...document.images].filter((i) => i.naturalWidth > 0).length);
  const playing = c1.filter((c, i) => c >= 0 && c > c0[i]).length;
  L.out(`control, 12 <img> tags: codes ${JSON.stringify(c0)} -> ${JSON.stringify(c1)}: ${playing} of 12 advance (${loaded} have a picture)`);
  L.check(playing <= 6, `${playing} <img> streams advance: the per-host connection limit did not hold?`);
  L.check(playing >= 4, `only ${playing} <img> streams advance (the first six should)`);
  await page.close();
  site.close();
  await L.until('the <img> viewers left', 10000, async () =>
    (await L.stats(S)).streams.every((s) => (s.viewers_list || []).length === 0));

  /* ---- 2. /grid: the same 12 over one WebSocket ------------------------- */
  const g = await chr.context.newPage();
  await g.setViewportSize({ width: 1600, height: 1200 });
  await g.goto(`${S}/grid?keep=1&streams=${names.join(',')}`);
  await L.until('12 grid tiles play', 20000, () => g.evaluate(() => {
    const G = window.sluiceGrid;
    return G && G.tiles.length === 12 && G.tiles.every((t) => t.frames >= 2 && t.code >= 0);
  }));
  const codes = () => g.evaluate(() =>
    [...document.querySelectorAll('.tile canvas')].map((c) => window.readBlockCode(c)));
  const g0 = await codes();
  await L.sleep(SPAN_MS);
  const g1 = await codes();
  const info = await g.evaluate(() => window.sluiceGrid.tiles.map((t) =>
    ({ s: t.stream, f: t.frames, fps: +t.fps.toFixed(1), lag: t.lagMs })));
  const adv = g1.filter((c, i) => c >= 0 && c > g0[i]).length;
  L.out(`/grid: codes ${JSON.stringify(g0)} -> ${JSON.stringify(g1)}: ${adv} of 12 advance; tiles ${JSON.stringify(info)}`);
  L.check(adv === 12, `only ${adv} of 12 grid tiles advance`);
  const st1 = await L.stats(S);
  const peers = new Set();
  let subs = 0;
  for (const s of st1.streams) for (const v of s.viewers_list || []) { peers.add(v.peer); subs++; }
  L.out(`server: ${subs} subscriptions from ${peers.size} connection(s)`);
  L.check(subs === 12 && peers.size === 1, `${subs} subscriptions from ${peers.size} connections`);
  await g.close();
});

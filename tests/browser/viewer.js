// The project's viewer page (/) plays in a real Chromium: over MJPEG (the
// <img id="stream">) and over WebSocket (the <canvas id="canvas">), the block
// code read from the picture with the page's own window.readBlockCode
// advances at about the stream's rate and stays close to the newest frame
// the server published; window.sluiceViewer and #frameno agree.
'use strict';

const L = require('./lib');

const a = L.args();
const S = a.server;
const SPAN_MS = 2000;

L.main('viewer', 60000, async () => {
  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);
  const page = await chr.context.newPage();
  await page.goto(S + '/');

  async function plays(mode, selector) {
    await L.until(`the viewer plays over ${mode}`, 15000, () => page.evaluate((m) => {
      const v = window.sluiceViewer;
      return v && v.mode === m && v.state === 'playing' && v.frames >= 3;
    }, mode));
    const read = () => page.evaluate((sel) => window.readBlockCode(document.querySelector(sel)), selector);
    const c0 = await L.until(`a block code in ${selector}`, 5000, async () => { const c = await read(); return c >= 0 ? c : null; });
    const s0 = (await L.stats(S)).streams[0].seq;
    const t0 = Date.now();
    await L.sleep(SPAN_MS);
    const c1 = await read();
    const s1 = (await L.stats(S)).streams[0].seq;
    const dt = Date.now() - t0;
    const info = await page.evaluate(() => {
      const v = window.sluiceViewer;
      return { state: v.state, mode: v.mode, frames: v.frames, frameNo: v.frameNo, fps: v.fps,
        text: document.getElementById('frameno').textContent, w: v.width, h: v.height };
    });
    const fps = ((c1 - c0) * 1000) / dt, live = ((s1 - s0) * 1000) / dt;
    L.out(`${mode}: ${selector} block code ${c0} -> ${c1} in ${dt} ms (${fps.toFixed(1)} fps shown, ` +
      `server published ${s0} -> ${s1}, ${live.toFixed(1)} fps); shown frame ${s1 - c1} behind live; ` +
      `sluiceViewer ${JSON.stringify(info)}`);
    L.check(c1 > c0, `${mode}: the picture did not advance (${c0} -> ${c1})`);
    L.check(c1 - c0 >= 0.5 * (s1 - s0), `${mode}: ${c1 - c0} frames shown while ${s1 - s0} were published`);
    L.check(s1 - c1 <= 30, `${mode}: the picture is ${s1 - c1} frames behind live`);
    L.check(info.state === 'playing' && info.mode === mode && info.w === 640 && info.h === 480,
      `${mode}: window.sluiceViewer says ${JSON.stringify(info)}`);
    L.check(info.frameNo >= c0 && info.frameNo <= s1 + 1, `${mode}: sluiceViewer.frameNo ${info.frameNo} is not the frame shown`);
    L.check(/^\d+$/.test(info.text) && Number(info.text) >= c0, `${mode}: #frameno shows "${info.text}"`);
    const vs = (await L.stats(S)).streams[0].viewers_list.filter((v) => v.transport === mode);
    L.check(vs.length === 1, `${mode}: the server has ${vs.length} ${mode} viewers`);
  }

  await plays('mjpeg', '#stream');
  await page.evaluate(() => window.sluiceViewer.setMode('ws'));
  await plays('ws', '#canvas');
  await L.until('the mjpeg viewer left when the page switched to ws', 5000, async () =>
    (await L.stats(S)).streams[0].viewers_list.every((v) => v.transport === 'ws'));
});

// The project's viewer page (/) holds no stream while it is in the
// background, and plays again when it comes back:
//   hidden (another tab brought to the front): it lets go after 3 s;
//   frozen (DevTools Page.setWebLifecycleState, as Chrome freezes a
//   background tab): it lets go at once (its 'freeze' handler);
//   shown again (brought to the front): it plays again.
// Measured on the server (/api/stats: the stream's viewer count) and in the
// page (window.sluiceViewer.state, document.visibilityState).
'use strict';

const L = require('./lib');

const a = L.args();
const S = a.server;

L.main('hidden_viewer', 75000, async () => {
  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);
  const page = await chr.context.newPage();
  await page.goto(S + '/');
  const viewers = async () => (await L.stats(S)).streams[0].viewers;
  const state = () => page.evaluate(() => [window.sluiceViewer.state, document.visibilityState]);
  const code = () => page.evaluate(() => window.readBlockCode(document.getElementById('stream')));

  async function comesBack(how) {
    const t = Date.now();
    await L.until(`${how}: the page is visible`, 5000, async () => (await state())[1] === 'visible', 50);
    await L.until(`${how}: the page plays again`, 10000, async () => (await state())[0] === 'playing', 50);
    await L.until(`${how}: the server has its viewer back`, 5000, async () => (await viewers()) === 1, 50);
    const ms = Date.now() - t;
    const c0 = await code();
    await L.sleep(1000);
    const c1 = await code();
    L.out(`${how}: playing with 1 viewer after ${ms} ms; block code ${c0} -> ${c1} in 1 s`);
    L.check(c0 >= 0 && c1 > c0, `${how}: the picture does not advance`);
  }

  await L.until('the viewer plays', 15000, async () => (await state())[0] === 'playing');
  await L.until('the server has one viewer', 5000, async () => (await viewers()) === 1);
  L.out('visible: playing, 1 viewer on the server');

  /* Hidden: another tab in front. Kept for 3 s, then released. */
  const other = await chr.context.newPage();
  await L.until('the viewer tab is hidden behind the other one', 5000, async () => (await state())[1] === 'hidden', 50);
  let t = Date.now();
  let heldAt = -1;
  const released = await L.until('the hidden page releases its stream', 10000, async () => {
    const [s] = await state();
    const n = await viewers();
    if (s === 'playing' && n === 1) heldAt = Date.now() - t;
    return s === 'released' && n === 0 ? Date.now() - t : null;
  }, 100);
  L.out(`hidden: still playing ${heldAt} ms after hiding, released (0 viewers) after ${released} ms`);
  L.check(heldAt >= 1500, `the hidden page let go at once (last seen playing at ${heldAt} ms), not after 3 s`);
  L.check(released >= 2500, `the hidden page let go after ${released} ms, before its 3 s`);
  await L.sleep(1000);
  L.check((await viewers()) === 0 && (await state())[0] === 'released', 'the hidden page took its stream back');

  await page.bringToFront();
  await comesBack('brought to the front');

  /* Hidden again, and frozen before its 3 s are up, as Chrome freezes a
   * background tab: released at once. */
  const life = await L.lifecycle(chr.context, page);
  await other.bringToFront();
  await L.until('the viewer tab is hidden again', 5000, async () => (await state())[1] === 'hidden', 50);
  t = Date.now();
  await life.freeze();
  await L.until('the frozen page releases its stream', 5000, async () => (await viewers()) === 0, 50);
  const frozenMs = Date.now() - t;
  L.out(`hidden and frozen: 0 viewers on the server ${frozenMs} ms after hiding`);
  L.check(frozenMs <= 2000, `the frozen page held its stream for ${frozenMs} ms`);
  await L.sleep(1500);
  L.check((await viewers()) === 0, 'the frozen page took its stream back');

  /* Back to the tab: unfrozen and shown, it plays again. */
  await life.activate();
  await page.bringToFront();
  await comesBack('unfrozen and brought to the front');
});

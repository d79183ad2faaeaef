// Shared helpers of the real-browser tests (tests/browser/*.js), run by
// tests/app/test_browser.c against a sluice-stream it started:
//
//   node tests/browser/SCRIPT.js --server http://127.0.0.1:PORT [--artifacts DIR]
//
// Each script starts Debian's Chromium itself (headless, no sandbox,
// background networking off, a fresh profile) and attaches playwright-core
// over CDP. Chromium is not launched through Playwright because a page that
// Playwright opens is kept "visible" by focus emulation (a capturer on the
// WebContents), and Page.setWebLifecycleState {frozen} is then silently a
// no-op: the page neither hides nor freezes and keeps reading its streams.
// Attaching with {noDefaults: true} leaves the default context alone, so the
// pages we open there can really be hidden and frozen, as Chrome does to a
// background tab.
//
// A script prints what it measured and exits 0; a failed check prints
// "FAIL: ..." and exits 1. A watchdog ends a script that hangs.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');

const NODE_MODULES = path.join(__dirname, '..', 'node', 'node_modules');
const CHROMIUM = process.env.SLUICE_CHROMIUM || '/usr/bin/chromium';

function out(...a) { process.stdout.write(a.join(' ') + '\n'); }

class Fail extends Error {}
function check(cond, ...msg) { if (!cond) throw new Fail(msg.join(' ')); }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Poll `fn` until it returns a truthy value (returned) or the deadline
 * passes (Fail with `what` and the last value seen). */
async function until(what, timeoutMs, fn, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); } catch (e) { last = e; }
    if (last && !(last instanceof Error)) return last;
    if (Date.now() >= end) {
      const why = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Fail(`${what}: not within ${timeoutMs} ms (last: ${why})`);
    }
    await sleep(everyMs);
  }
}

/* A sampling window: call `fn(i)` for i = 1..seconds, each at `t0` + i s
 * (default now; a slow sample does not shift the later ones), and return
 * what the calls returned. */
async function everySecond(seconds, fn, t0 = Date.now()) {
  const out = [];
  for (let i = 1; i <= seconds; i++) {
    await sleep(Math.max(0, t0 + i * 1000 - Date.now()));
    out.push(await fn(i));
  }
  return out;
}

function args() {
  const a = { server: null, artifacts: null };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--server') a.server = v[++i];
    else if (v[i] === '--artifacts') a.artifacts = v[++i];
    else if (v[i].startsWith('--')) a[v[i].slice(2)] = v[++i];
  }
  if (!a.server) { process.stderr.write('usage: --server http://HOST:PORT\n'); process.exit(2); }
  a.server = a.server.replace(/\/$/, '');
  return a;
}

async function getJSON(url, timeoutMs = 5000) {
  const r = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(timeoutMs) });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

const stats = (server) => getJSON(server + '/api/stats');

/* The mjpeg viewers of the default stream. */
function mjpegViewers(s) {
  return (s.streams[0].viewers_list || []).filter((v) => v.transport === 'mjpeg');
}

const portOf = (peer) => Number(String(peer).split(':').pop());

/* The TCP socket from local port `lport` to remote port `rport` in
 * /proc/net/tcp: {tx, rx} queue bytes (tx: written by the owner and not yet
 * acknowledged by the peer, i.e. unsent plus in flight; rx: received and not
 * yet read by the owner), or null when there is none. */
function tcpQueues(lport, rport) {
  const text = fs.readFileSync('/proc/net/tcp', 'utf8');
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const l = parseInt(f[1].split(':')[1], 16), r = parseInt(f[2].split(':')[1], 16);
    if (l !== lport || r !== rport) continue;
    const [tx, rx] = f[4].split(':').map((x) => parseInt(x, 16));
    return { tx, rx, state: f[3] };
  }
  return null;
}

/* A static server on another loopback port (another origin than the
 * stream's): GET / answers `html`, everything else 404. */
async function staticServer(html) {
  const srv = http.createServer((q, r) => {
    if (q.url === '/' || q.url === '/index.html') {
      r.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      r.end(html);
    } else {
      r.writeHead(404); r.end();
    }
  });
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  return { url: `http://127.0.0.1:${srv.address().port}/`, close: () => srv.close() };
}

function loadPlaywright() {
  const p = path.join(NODE_MODULES, 'playwright-core');
  try {
    return require(p);
  } catch (e) {
    throw new Fail(`playwright-core is missing in ${NODE_MODULES}: run (cd tests/node && npm install)`);
  }
}

/* Start Chromium with a fresh profile and attach playwright-core to it. */
async function startChromium() {
  const { chromium } = loadPlaywright();
  check(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-chromium-'));
  const flags = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-breakpad', '--no-first-run',
    '--no-default-browser-check', '--disable-default-apps', '--mute-audio',
    '--window-size=1280,900', '--remote-debugging-address=127.0.0.1',
    '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank',
  ];
  /* Not detached: Chromium stays in the test's process group, so the C
   * runner's kill of that group on a timeout takes it down too. */
  const proc = spawn(CHROMIUM, flags, { stdio: ['ignore', 'ignore', 'pipe'] });
  /* However the script ends (a watchdog, an exception), no browser and no
   * profile stay behind. */
  process.on('exit', () => {
    if (proc.exitCode === null && !proc.signalCode) proc.kill('SIGKILL');
    fs.rmSync(profile, { recursive: true, force: true });
  });
  let log = '';
  const endpoint = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Fail('Chromium printed no DevTools endpoint in 30 s:\n' + log)), 30000);
    proc.stderr.on('data', (d) => {
      log = (log + d).slice(-16384); /* keep draining: a full pipe would block Chromium */
      const m = log.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    proc.on('exit', (code, sig) => { clearTimeout(t); reject(new Fail(`Chromium exited (${code ?? sig}):\n${log}`)); });
  });
  const browser = await chromium.connectOverCDP(endpoint, { noDefaults: true, timeout: 30000 });
  const context = browser.contexts()[0];
  const ver = browser.version();
  let closed = false;
  async function close() {
    if (closed) return;
    closed = true;
    const exited = new Promise((r) => { if (proc.exitCode !== null || proc.signalCode) r(); else proc.once('exit', r); });
    try {
      const s = await browser.newBrowserCDPSession();
      await Promise.race([s.send('Browser.close'), sleep(3000)]);
    } catch (e) { /* already gone */ }
    await Promise.race([exited, sleep(5000)]);
    if (proc.exitCode === null && !proc.signalCode) { proc.kill('SIGKILL'); await Promise.race([exited, sleep(3000)]); }
    fs.rmSync(profile, { recursive: true, force: true });
  }
  cleanups.push(close);
  return { browser, context, proc, version: ver, close, log: () => log };
}

/* Page lifecycle through the DevTools protocol, as the browser does to
 * background tabs: 'frozen' hides the page and freezes it (its 'freeze'
 * event fires, no task runs, its loaders stop reading); 'active' unfreezes
 * it but leaves it hidden. show() makes it visible again (what a user
 * switching back to the tab does): DevTools focus emulation is a capturer
 * of the tab, which the browser treats as visible. */
async function lifecycle(context, page) {
  const cdp = await context.newCDPSession(page);
  return {
    cdp,
    freeze: () => cdp.send('Page.setWebLifecycleState', { state: 'frozen' }),
    activate: () => cdp.send('Page.setWebLifecycleState', { state: 'active' }),
    show: () => cdp.send('Emulation.setFocusEmulationEnabled', { enabled: true }),
  };
}

const cleanups = [];

/* Run a test body: watchdog, cleanup, exit status. */
function main(name, watchdogMs, body) {
  const t0 = Date.now();
  const wd = setTimeout(() => {
    out(`FAIL: ${name}: watchdog (${watchdogMs} ms)`);
    process.exit(1);
  }, watchdogMs);
  (async () => {
    let code = 0;
    try {
      await body();
      out(`${name}: ok in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      out(`FAIL: ${name}: ${e instanceof Fail ? e.message : e.stack || e}`);
      code = 1;
    }
    for (const c of cleanups.reverse()) {
      try { await c(); } catch (e) { /* best effort */ }
    }
    clearTimeout(wd);
    process.exit(code);
  })();
}

/* The block code of what `page` shows of the element `selector` now: a
 * capture of the page's surface (DevTools Page.captureScreenshot, clipped
 * to the element; much faster than Playwright's element screenshot, which
 * waits for the page to settle), decoded by the server's own reader
 * (blockcode.js, window.readBlockCode) from a data: URL. Reading the <img>
 * itself through a canvas is not possible in a page of another origin: a
 * cross-origin picture without CORS taints the canvas. Needs
 * readBlockCode in the page (addScriptTag of the server's blockcode.js). */
async function shownCode(page, cdp, selector) {
  const box = await page.evaluate((sel) => {
    const r = document.querySelector(sel).getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  }, selector);
  check(box.width > 0 && box.height > 0, `${selector} is not displayed`);
  const shot = await cdp.send('Page.captureScreenshot', { format: 'png', clip: { ...box, scale: 1 }, fromSurface: true });
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    await img.decode();
    return window.readBlockCode(img);
  }, shot.data);
}

function mkdirp(d) { fs.mkdirSync(d, { recursive: true }); return d; }

module.exports = {
  out, check, Fail, sleep, until, everySecond, args, getJSON, stats, mjpegViewers, portOf, tcpQueues,
  staticServer, startChromium, lifecycle, main, shownCode, mkdirp,
};

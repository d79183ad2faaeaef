/* sluice grid: every stream of the server (or ?streams=a,b,c) in one page,
 * all over ONE WebSocket (/mux, docs/mux.md) — a browser opens at most 6
 * HTTP/1.1 connections per host, so a grid of <img> tags stops at six.
 *
 * A tile subscribes while it is on screen (IntersectionObserver) and
 * unsubscribes when scrolled away; the page lets its socket go while it is
 * in the background (hidden 3 s, or frozen: at once), like the viewer.
 * MJPEG tiles draw the JPEG of each media message; H.264 tiles decode with
 * WebCodecs (VideoDecoder) where the browser has it, through the viewer's
 * decoder (h264dec.js): configured from the subscription's `config`
 * message, fed its Annex-B access units, started at a keyframe and after
 * an error reset and fed again from the next keyframe.
 *
 * Page query parameters: token=…, streams=a,b,c, fps=<cap per tile>,
 * policy=<hub policy>, keep=1 (never release; for tests of the server).
 *
 * window.sluiceGrid (for tests): {state, tiles: [{stream, kind, subscribed,
 * frames, code, seq, fps, lagMs, and for H.264 tiles the decoder's counters
 * (h264dec.js): decoded, errors, received, keyframes, gaps, skipped,
 * resyncs, breaks, codec, lastError, unsupported (why it cannot decode)}]}. */
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const keep = params.get('keep') === '1';
  const fpsCap = Math.max(0, parseFloat(params.get('fps')) || 0);
  const policy = params.get('policy');
  const RELEASE_AFTER_MS = 3000;
  const dir = location.pathname.replace(/[^/]*$/, '');

  function url(path, ws) {
    const u = new URL(path.startsWith('/') ? dir + path.slice(1) : path, location.href);
    if (token) u.searchParams.set('token', token);
    if (ws) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }
  for (const a of document.querySelectorAll('a[data-nav]')) a.href = url(a.dataset.nav);

  const G = window.sluiceGrid = { state: 'connecting', tiles: [] };
  let sock = null, gen = 0, hideTimer = 0, nextId = 1;
  const backoff = window.sluiceReconnect(open); /* reconnect.js */
  const byId = new Map(); /* subscription id -> tile */

  function setState(s, text) {
    G.state = s;
    $('state').textContent = s === 'released' ? 'paused' : s;
    $('state').className = 'pill ' + (s === 'playing' ? 'ok' : s === 'connecting' ? 'warn' : '');
    $('msg').textContent = text || '';
    $('msg').hidden = !text;
  }

  /* ---- tiles ------------------------------------------------------------ */
  function makeTile(s) {
    const el = document.createElement('div');
    el.className = 'tile';
    el.innerHTML = '<div class="pic"><canvas width="0" height="0"></canvas><div class="off">waiting</div></div>' +
      '<div class="cap"><b></b><span class="fps">–</span><span class="lag muted">–</span></div>';
    el.querySelector('b').textContent = s.name;
    el.querySelector('b').title = s.source || s.name;
    $('grid').appendChild(el);
    const t = { stream: s.name, kind: s.kind === 'h264' ? 'h264' : 'mjpeg', subscribed: false, frames: 0,
      code: -1, seq: 0, fps: 0, lagMs: 0, id: 0, visible: false, el,
      canvas: el.querySelector('canvas'), off: el.querySelector('.off'),
      times: [], pending: null, busy: false, h264: null, unsupported: null,
      decoded: 0, errors: 0, received: 0, keyframes: 0, gaps: 0, skipped: 0, resyncs: 0, breaks: 0,
      codec: null, lastError: null };
    t.ctx = t.canvas.getContext('2d');
    G.tiles.push(t);
    return t;
  }

  function send(o) { if (sock && sock.readyState === 1) sock.send(JSON.stringify(o)); }

  function subscribe(t) {
    if (t.id || !sock || sock.readyState !== 1) return;
    t.id = nextId++;
    byId.set(t.id, t);
    const o = { op: 'subscribe', id: t.id, stream: t.stream };
    if (fpsCap > 0) o.fps = fpsCap;
    if (policy) o.policy = policy;
    if (t.kind === 'h264') o.format = 'h264';
    send(o);
  }
  function unsubscribe(t) {
    if (!t.id) return;
    send({ op: 'unsubscribe', id: t.id });
    byId.delete(t.id); /* frames still on the way for it are ignored */
    t.id = 0; t.subscribed = false;
    t.off.textContent = t.unsupported ? 'cannot decode H.264 here: ' + t.unsupported : 'off screen';
    t.off.hidden = false;
    closeDecoder(t);
  }
  /* A tile this browser cannot decode stays unsubscribed. */
  function want(t) { return t.visible && !document.hidden && !t.unsupported; }
  function sync() { for (const t of G.tiles) { if (want(t)) subscribe(t); else unsubscribe(t); } }

  function drawn(t, seq, wallMs, w, h, code) {
    const now = performance.now();
    t.frames++; t.seq = seq;
    t.code = code;
    t.lagMs = Math.max(0, Date.now() - wallMs);
    t.times.push(now);
    while (t.times.length && now - t.times[0] > 2000) t.times.shift();
    t.off.hidden = true;
    if (G.state !== 'playing') setState('playing');
    backoff.reset();
  }

  /* MJPEG: latest wins; an older undrawn JPEG is skipped. */
  async function pumpJpeg(t) {
    t.busy = true;
    while (t.pending) {
      const m = t.pending; t.pending = null;
      let bmp;
      try { bmp = await createImageBitmap(new Blob([m.data], { type: 'image/jpeg' })); } catch (e) { continue; }
      if (!t.id) { bmp.close(); break; }
      if (t.canvas.width !== bmp.width || t.canvas.height !== bmp.height) { t.canvas.width = bmp.width; t.canvas.height = bmp.height; }
      t.ctx.drawImage(bmp, 0, 0);
      drawn(t, m.seq, m.wall, bmp.width, bmp.height, window.readBlockCode(bmp));
      bmp.close();
    }
    t.busy = false;
  }

  /* H.264 through WebCodecs (h264dec.js), one decoder per subscription: it
   * is created with the subscription and configured by its `config`
   * messages (the access units before the first one are counted as
   * skipped). */
  function closeDecoder(t) {
    if (t.h264) t.h264.close();
    t.h264 = null;
  }
  function openDecoder(t) {
    closeDecoder(t);
    const id = t.id;
    const s = t.h264 = window.sluiceH264.session({
      canvas: t.canvas, stats: t,
      live: () => t.h264 === s && t.id === id,
      unsupported: (why) => {
        if (t.h264 !== s) return;
        t.unsupported = why;
        unsubscribe(t);
      },
      drawn: (seq, at, w, h) => drawn(t, seq, at === undefined ? Date.now() : at, w, h, window.readBlockCode(t.canvas)),
    });
  }

  /* ---- the socket --------------------------------------------------------- */
  function onText(j) {
    const t = byId.get(j.id);
    if (j.type === 'subscribed' && t) {
      t.subscribed = true; t.kind = j.kind === 'h264' ? 'h264' : 'mjpeg';
      t.off.textContent = 'waiting for a frame';
      if (t.kind === 'h264') {
        if (window.VideoDecoder && window.EncodedVideoChunk) openDecoder(t);
        else window.sluiceH264.support('').then((r) => { t.unsupported = r.why; unsubscribe(t); });
      }
    } else if (j.type === 'config' && t) {
      if (t.h264) t.h264.push({ config: j });
    } else if (j.type === 'error' && t) {
      t.off.textContent = j.error; t.off.hidden = false; byId.delete(t.id); t.id = 0; closeDecoder(t);
    } else if (j.type === 'unsubscribed' && t) {
      byId.delete(t.id); t.id = 0; t.subscribed = false; closeDecoder(t);
      t.off.textContent = 'stream ended (' + (j.reason || '') + ')'; t.off.hidden = false;
    }
  }
  function onBinary(buf) {
    if (buf.byteLength < 20) return;
    const v = new DataView(buf);
    const t = byId.get(v.getUint32(0));
    if (!t) return;
    const type = v.getUint8(4), flags = v.getUint8(5), seq = v.getUint32(8);
    const wall = v.getUint32(12) * 4294967296 + v.getUint32(16);
    const data = new Uint8Array(buf, 20);
    if (type === 0) {
      t.pending = { data, seq, wall };
      if (!t.busy) pumpJpeg(t);
    } else if (type === 1 && t.h264) {
      t.h264.push({ key: (flags & 1) !== 0, gap: (flags & 2) !== 0, seq, at: wall, data });
    }
  }

  function stop() {
    gen++;
    backoff.cancel();
    if (sock) {
      sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
      try { sock.close(1000); } catch (e) { /* closed */ }
      sock = null;
    }
    byId.clear();
    for (const t of G.tiles) { t.id = 0; t.subscribed = false; t.pending = null; closeDecoder(t); }
  }
  function open() {
    stop();
    const g = gen;
    setState('connecting', backoff.attempts() ? 'Reconnecting…' : '');
    let s;
    try { s = sock = new WebSocket(url('/mux', true)); } catch (e) { retry('cannot open WebSocket'); return; }
    s.binaryType = 'arraybuffer';
    s.onopen = () => { if (g === gen) sync(); };
    s.onmessage = (e) => {
      if (g !== gen) return;
      if (typeof e.data === 'string') { try { onText(JSON.parse(e.data)); } catch (x) { /* not ours */ } }
      else onBinary(e.data);
    };
    s.onclose = (e) => { if (g === gen) retry(window.sluiceCloseWhy(e)); };
    s.onerror = () => {};
  }
  function retry(why) {
    stop();
    const delay = backoff.schedule();
    setState('connecting', 'Reconnecting in ' + Math.ceil(delay / 1000) + ' s… (' + why + ')');
  }

  /* Per-tile rate and lag, twice a second. */
  setInterval(() => {
    const now = performance.now();
    for (const t of G.tiles) {
      while (t.times.length && now - t.times[0] > 2000) t.times.shift();
      t.fps = t.id && t.times.length > 1 ? (t.times.length - 1) * 1000 / Math.max(1000, now - t.times[0]) : 0;
      t.el.querySelector('.fps').textContent = t.id ? t.fps.toFixed(1) + ' fps' : '–';
      t.el.querySelector('.lag').textContent = t.id && t.frames ? t.lagMs + ' ms' : '–';
    }
  }, 500);

  /* ---- background: hold no socket while hidden or frozen ---------------- */
  function release() {
    clearTimeout(hideTimer); hideTimer = 0;
    if (keep || G.state === 'released') return;
    stop();
    setState('released', 'Paused while the page is in the background');
  }
  function resumeNow() {
    clearTimeout(hideTimer); hideTimer = 0;
    if (G.state === 'released') { backoff.reset(); open(); }
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') { clearTimeout(hideTimer); hideTimer = setTimeout(release, RELEASE_AFTER_MS); }
    else { resumeNow(); sync(); }
  });
  document.addEventListener('freeze', release);
  document.addEventListener('resume', () => { if (!document.hidden) resumeNow(); });
  window.addEventListener('pagehide', (e) => { if (e.persisted) release(); });
  window.addEventListener('pageshow', (e) => { if (e.persisted) resumeNow(); });

  /* ---- streams ------------------------------------------------------------ */
  const io = typeof IntersectionObserver !== 'undefined' ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      const t = G.tiles.find((x) => x.el === e.target);
      if (t) t.visible = e.isIntersecting;
    }
    sync();
  }) : null;

  function start(list) {
    $('count').textContent = list.length + ' stream' + (list.length === 1 ? '' : 's') + ' · one WebSocket';
    for (const s of list) {
      const t = makeTile(s);
      if (io) io.observe(t.el); else t.visible = true;
    }
    open();
  }
  const chosen = (params.get('streams') || '').split(',').map((x) => x.trim()).filter(Boolean);
  fetch(url('/api/streams'), { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
    .then((j) => {
      const all = j && Array.isArray(j.streams) ? j.streams : [];
      start(chosen.length ? chosen.map((n) => all.find((s) => s.name === n) || { name: n }) : all);
    })
    .catch(() => start(chosen.map((n) => ({ name: n }))));
  if (document.hidden) hideTimer = setTimeout(release, RELEASE_AFTER_MS);
})();

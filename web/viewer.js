/* sluice viewer: MJPEG <img> or WebSocket <canvas> for MJPEG streams,
 * WebCodecs decoding onto the <canvas> for H.264 streams; stream picker, fps
 * cap, live info, reconnect with backoff, and no connection held in
 * background.
 *
 * Page query parameters (all optional): token=… (added to every request),
 * stream=<name>, mode=mjpeg|ws (the transport of MJPEG streams; an H.264
 * stream always plays in mode 'h264'), fps=<cap>, policy=<hub policy>,
 * keep=1 (do not release the stream while hidden or frozen; for tests of the
 * server).
 *
 * window.sluiceViewer (for tests): {state: 'playing'|'released'|'connecting'|
 * 'unsupported', frames (drawn), mode: 'mjpeg'|'ws'|'h264', frameNo (block
 * code of the picture shown), fps, width, height, stream, kind, url, connects
 * (streams opened, reconnects included), and for
 * H.264: decoded (frames out of the decoder), errors (decoder errors),
 * received, keyframes, gaps (keyframes the server flagged as after a skip),
 * skipped (frames dropped here while waiting for a keyframe), breaks (delta
 * frames that did not follow the frame before them: a reference missing),
 * resyncs
 * (decoder resets), latencyMs (Date.now() minus the server's publish time of
 * the frame last drawn), latencyAvgMs (its mean over 2 s), lastSeq (server
 * frame number of the frame last drawn), codec, lastError}. */
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const img = $('stream'), canvas = $('canvas'), msg = $('msg');
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const keep = params.get('keep') === '1';
  const policy = params.get('policy');
  const RELEASE_AFTER_MS = 3000;

  /* The app root: the page's directory, or the part before streams/<name>/
   * when the page is served inside a stream's namespace. */
  const dir = location.pathname.replace(/[^/]*$/, '');
  const nsMatch = dir.match(/^(.*\/)streams\/[^/]+\/$/);
  const root = nsMatch ? nsMatch[1] : dir;

  function url(path, extra, ws) {
    /* Server paths are absolute from the app root ("/ws"); page-relative
     * paths ("stream.mjpg") resolve against the page. */
    const u = new URL(path.startsWith('/') ? root + path.slice(1) : path, location.href);
    for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined && v !== '') u.searchParams.set(k, v);
    if (token) u.searchParams.set('token', token);
    if (ws) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }

  for (const a of document.querySelectorAll('a[data-nav]'))
    a.href = url(a.dataset.nav);

  /* The transport chosen for MJPEG streams; H.264 streams have one. */
  let jpegMode = params.get('mode') === 'ws' ? 'ws' : 'mjpeg';
  const V = window.sluiceViewer = {
    state: 'connecting', frames: 0, mode: jpegMode,
    frameNo: -1, fps: 0, width: 0, height: 0, stream: null, kind: 'mjpeg', url: '', connects: 0,
    decoded: 0, errors: 0, received: 0, keyframes: 0, gaps: 0, skipped: 0, resyncs: 0, breaks: 0,
    latencyMs: null, latencyAvgMs: null, lastSeq: -1, codec: null, lastError: null, lastClose: null,
  };
  let fpsCap = Math.max(0, parseFloat(params.get('fps')) || 0);
  /* The current stream: page-relative until /api/streams says more. */
  let cur = { name: null, mjpeg: 'stream.mjpg', ws: 'ws', source: '', kind: 'mjpeg', codec: null };
  let streams = [];

  let gen = 0;              /* bumped on every (re)connect; stale events are ignored */
  let sock = null, retryTimer = 0, hideTimer = 0, attempt = 0;
  let lastFrameAt = 0, lastHash = -1, lastCode = -2, times = [], lats = [];
  let h264 = null;          /* the H.264 session of the open socket */
  let stale = false;        /* the canvas holds the last frame, shown dimmed while away */

  function setState(s, text) {
    V.state = s;
    const pill = $('state');
    pill.textContent = s === 'released' ? 'paused' : s;
    pill.className = 'pill ' + (s === 'playing' ? 'ok' : s === 'connecting' ? 'warn' : s === 'unsupported' ? 'bad' : '');
    msg.textContent = text || '';
    msg.hidden = s === 'playing';
    $('stage').classList.toggle('stale', s !== 'playing' && stale);
  }

  /* Keep the last MJPEG frame on the canvas while reconnecting or released,
   * so the page does not go blank (the <img> must drop its source). */
  function keepLastFrame() {
    if (V.mode !== 'mjpeg' || !img.naturalWidth || img.getAttribute('src') === null || img.hidden) return;
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    try { canvas.getContext('2d').drawImage(img, 0, 0); } catch (e) { return; }
    stale = true; canvas.hidden = false; img.hidden = true;
  }

  /* ---- frames and info ------------------------------------------------ */
  function gotFrame(code, w, h) {
    const now = performance.now();
    V.frames++;
    lastFrameAt = now;
    attempt = 0;
    times.push(now);
    while (times.length && now - times[0] > 2000) times.shift();
    if (code >= 0 && code !== V.frameNo) { V.frameNo = code; $('frameno').textContent = String(code); }
    if (w !== V.width || h !== V.height) { V.width = w; V.height = h; }
    if (V.state !== 'playing') setState('playing');
  }

  function showInfo() {
    const now = performance.now();
    while (times.length && now - times[0] > 2000) times.shift();
    V.fps = times.length > 1 && now - times[0] > 0 ? (times.length - 1) * 1000 / Math.max(1000, now - times[0]) : 0;
    if (V.state !== 'playing') V.fps = 0;
    $('res').textContent = V.width ? V.width + ' × ' + V.height : '–';
    $('fps').textContent = V.state === 'playing' ? V.fps.toFixed(1) : '–';
    $('frames').textContent = V.frames;
    $('frameno').textContent = V.frameNo >= 0 ? String(V.frameNo) : '–';
    while (lats.length && now - lats[0][0] > 2000) lats.shift();
    V.latencyAvgMs = lats.length ? lats.reduce((a, x) => a + x[1], 0) / lats.length : null;
    const h = V.mode === 'h264';
    $('latency').textContent = h && V.state === 'playing' && V.latencyAvgMs !== null ? Math.round(V.latencyAvgMs) + ' ms' : '–';
    $('codec').textContent = h ? V.codec || cur.codec || 'H.264' : 'JPEG';
    $('decoded').textContent = V.decoded;
    $('errors').textContent = V.errors + (V.resyncs ? ' · ' + V.resyncs + (V.resyncs === 1 ? ' reset' : ' resets') : '');
    $('errors').title = V.lastError || '';
    $('errors').className = V.errors ? 'bad' : '';
    $('name').textContent = cur.name || 'default';
    $('source').textContent = cur.source || '–';
    $('source').title = cur.source || '';
  }

  /* MJPEG: Chromium fires no event per multipart part, so new frames are
   * noticed by reading the picture once per display frame. */
  function probe() {
    requestAnimationFrame(probe);
    if (V.mode !== 'mjpeg' || V.state === 'released' || !img.getAttribute('src') || !img.naturalWidth) return;
    const r = window.sluiceScanFrame(img);
    if (!r) return;
    const changed = r.code >= 0 ? r.code !== lastCode : r.hash !== lastHash;
    lastCode = r.code; lastHash = r.hash;
    if (changed) gotFrame(r.code, r.width, r.height);
  }
  requestAnimationFrame(probe);

  /* ---- transports ----------------------------------------------------- */
  function streamParams() { return { fps: fpsCap > 0 && V.mode !== 'h264' ? fpsCap : null, policy }; }

  function stop() {
    gen++;
    clearTimeout(retryTimer); retryTimer = 0;
    if (img.getAttribute('src') !== null) img.removeAttribute('src');
    if (h264) { h264.close(); h264 = null; }
    if (sock) {
      sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
      try { sock.close(1000); } catch (e) { /* already closed */ }
      sock = null;
    }
  }

  function open() {
    stop();
    const g = gen;
    V.connects++;
    lastFrameAt = performance.now(); lastHash = -1; lastCode = -2; times = [];
    setState('connecting', attempt ? 'Reconnecting…' : 'Connecting…');
    if (V.mode === 'h264') {
      openH264(g);
    } else if (V.mode === 'mjpeg') {
      img.hidden = stale; canvas.hidden = !stale; /* the <img> shows once it has a frame */
      V.url = url(cur.mjpeg, streamParams());
      img.onload = () => { if (g === gen) { img.hidden = false; canvas.hidden = true; stale = false; probe1(); } };
      img.onerror = () => { if (g === gen) retry('stream error'); };
      img.src = V.url;
    } else {
      img.hidden = true; canvas.hidden = false;
      V.url = url(cur.ws, streamParams(), true);
      let s;
      try { s = sock = new WebSocket(V.url); } catch (e) { retry('cannot open WebSocket'); return; }
      s.binaryType = 'blob';
      let pending = null, busy = false;
      const ctx = canvas.getContext('2d');
      const pump = async () => {
        busy = true;
        while (pending && g === gen) {
          const blob = pending; pending = null; /* latest wins: older undrawn frames are skipped */
          let bmp;
          try { bmp = await createImageBitmap(new Blob([blob], { type: 'image/jpeg' })); } catch (e) { continue; }
          if (g !== gen) { bmp.close(); break; }
          if (canvas.width !== bmp.width || canvas.height !== bmp.height) { canvas.width = bmp.width; canvas.height = bmp.height; }
          ctx.drawImage(bmp, 0, 0);
          stale = true;
          gotFrame(window.readBlockCode(bmp), bmp.width, bmp.height);
          bmp.close();
        }
        busy = false;
      };
      s.onmessage = (e) => {
        if (g !== gen || typeof e.data === 'string') return;
        pending = e.data;
        if (!busy) pump();
      };
      s.onclose = (e) => { if (g === gen) retry('connection closed' + (e.code && e.code !== 1005 ? ' (' + e.code + ')' : '')); };
      s.onerror = () => {}; /* onclose follows */
    }
  }
  /* ---- H.264 over the WebSocket, decoded with WebCodecs --------------- */
  /* Whether VideoDecoder takes `codec`: {ok, why}, asked once per codec. */
  const support = new Map();
  function h264Support(codec) {
    if (!window.VideoDecoder || !window.EncodedVideoChunk)
      return Promise.resolve({ ok: false, why: window.isSecureContext === false
        ? 'WebCodecs is only offered to secure pages (https:// or localhost), and this page is not one'
        : 'it has no VideoDecoder' });
    if (!support.has(codec))
      support.set(codec, VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true })
        .then((r) => (r && r.supported ? { ok: true } : { ok: false, why: 'its VideoDecoder does not support ' + codec }),
          (e) => ({ ok: false, why: 'its VideoDecoder refuses ' + codec + ' (' + (e && e.message || e) + ')' })));
    return support.get(codec);
  }
  function unsupported(why) {
    stop();
    setState('unsupported', 'This browser cannot decode H.264 with WebCodecs; ' + why +
      '. MJPEG streams still play here; for this one use a browser with WebCodecs H.264 ' +
      '(Chrome, Edge, Safari 16.4+, Firefox 130+), or a player such as ffplay or VLC on ' + url(cur.base ? cur.base + 'stream.h264' : 'stream.h264').replace(/\?.*$/, '') + '.');
  }

  function openH264(g) {
    img.hidden = true; canvas.hidden = false;
    if (!window.VideoDecoder) { h264Support('').then((r) => { if (g === gen) unsupported(r.why); }); return; }
    /* The codec the stream list gave: an unsupported one opens no socket. */
    const pre = cur.codec ? h264Support(cur.codec) : Promise.resolve({ ok: true });
    pre.then((r) => {
      if (g !== gen) return;
      if (!r.ok) { unsupported(r.why); return; }
      V.url = url(cur.ws, streamParams(), true);
      let s;
      try { s = sock = new WebSocket(V.url); } catch (e) { retry('cannot open WebSocket'); return; }
      s.binaryType = 'arraybuffer';
      h264 = h264Session(g);
      s.onmessage = (e) => { if (g === gen && h264) h264.push(e.data); };
      s.onclose = (e) => {
        if (g !== gen) return;
        V.lastClose = { code: e.code, reason: e.reason, clean: e.wasClean, sinceFrameMs: Math.round(performance.now() - lastFrameAt) };
        retry('connection closed' + (e.code && e.code !== 1005 ? ' (' + e.code + ')' : ''));
      };
      s.onerror = () => {};
    });
  }

  /* One socket's worth of decoding. Messages: a text {"type":"config",
   * codec, width, height, fps} before the first frame it applies to, and per
   * access unit a binary message: byte 0 = 1, byte 1 flags (bit 0 keyframe,
   * bit 1 gap), bytes 4..7 frame number and 8..15 publish time (Unix ms),
   * both big-endian, then the access unit in Annex-B. The decoder starts at
   * a keyframe (the server sends the GOP since its last IDR first) and after
   * an error is reset and fed again from the next keyframe. */
  function h264Session(g) {
    const ctx = canvas.getContext('2d');
    const INBOX_MAX = 600, QUEUE_MAX = 90; /* 20 s / 3 s of 30 fps */
    let dec = null, cfg = null, checking = false, needKey = true, lastSubmitted = -1;
    let pending = null, drawnAt = performance.now(), inbox = [], lastRecv = -1;
    const pub = new Map(); /* frame number -> publish time, until drawn */

    function reset() {
      if (dec && dec.state !== 'closed') { try { dec.close(); } catch (e) { /* closed by an error */ } }
      const d = dec = new VideoDecoder({
        output: (f) => onFrame(d, f),
        error: (e) => onError(d, e),
      });
      const c = { codec: cfg.codec, optimizeForLatency: true };
      if (cfg.width > 0 && cfg.height > 0) { c.codedWidth = cfg.width; c.codedHeight = cfg.height; }
      dec.configure(c);
      needKey = true; lastSubmitted = -1; pub.clear();
    }
    function onError(d, e) {
      if (d !== dec || g !== gen) return;
      V.errors++;
      V.lastError = (e && (e.name + ': ' + e.message)) || String(e);
      if (e && e.name === 'NotSupportedError') { unsupported('its decoder failed on ' + cfg.codec); return; }
      V.resyncs++;
      reset(); /* and wait for the next keyframe */
    }
    function onFrame(d, f) {
      if (d !== dec || g !== gen) { f.close(); return; }
      V.decoded++;
      if (pending) pending.close(); /* not drawn yet and already superseded */
      pending = f;
      /* The newest frame is drawn at once. One with later frames still in
       * the decoder (the join burst, or a decoder that fell behind) is kept
       * until a newer one replaces it, so the burst shows only its last
       * frame; a decoder that stays behind still shows one every 250 ms. */
      if (f.timestamp >= lastSubmitted || performance.now() - drawnAt >= 250) draw();
    }
    function draw() {
      const f = pending;
      if (!f || g !== gen) return;
      pending = null;
      drawnAt = performance.now();
      const w = f.displayWidth, h = f.displayHeight, seq = f.timestamp;
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(f, 0, 0, w, h);
      f.close();
      const at = pub.get(seq);
      for (const k of pub.keys()) { if (k > seq) break; pub.delete(k); }
      V.lastSeq = seq;
      if (at !== undefined) {
        V.latencyMs = Date.now() - at;
        lats.push([performance.now(), V.latencyMs]);
      }
      stale = true;
      gotFrame(window.readBlockCode(canvas), w, h);
    }

    function config(text) {
      let m;
      try { m = JSON.parse(text); } catch (e) { return; }
      if (!m || m.type !== 'config' || typeof m.codec !== 'string') return;
      const c = { codec: m.codec, width: m.width | 0, height: m.height | 0, fps: +m.fps || 0 };
      if (cfg && dec && dec.state === 'configured' && c.codec === cfg.codec && c.width === cfg.width && c.height === cfg.height) return;
      cfg = c; V.codec = c.codec;
      checking = true; /* what follows waits in the inbox for the answer */
      h264Support(c.codec).then((r) => {
        if (g !== gen || cfg !== c) return;
        if (!r.ok) { unsupported(r.why); return; }
        checking = false;
        reset();
        while (!checking && inbox.length && g === gen) handle(inbox.shift());
      });
    }
    function chunk(buf) {
      if (!(buf instanceof ArrayBuffer) || buf.byteLength <= 16) return;
      const dv = new DataView(buf);
      if (dv.getUint8(0) !== 1) return;
      const flags = dv.getUint8(1), key = (flags & 1) !== 0;
      const seq = dv.getUint32(4), at = dv.getUint32(8) * 4294967296 + dv.getUint32(12);
      V.received++;
      if (flags & 2) V.gaps++;
      if (key) V.keyframes++;
      /* The server skips only to a keyframe, so a delta frame follows the
       * frame before it; one that does not lacks its reference: counted,
       * and not decoded (the picture waits for the next keyframe). */
      const follows = lastRecv < 0 || seq === ((lastRecv + 1) >>> 0);
      lastRecv = seq;
      if (!key && !follows) { V.breaks++; needKey = true; }
      if (!dec) { V.skipped++; return; } /* before any configuration */
      if (dec.decodeQueueSize > QUEUE_MAX) { /* this page cannot keep up: start again at a keyframe */
        V.resyncs++;
        reset();
      }
      if (needKey && !key) { V.skipped++; return; }
      try {
        dec.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp: seq, data: new Uint8Array(buf, 16) }));
      } catch (e) {
        V.errors++; V.resyncs++;
        V.lastError = (e && (e.name + ': ' + e.message)) || String(e);
        reset();
        return;
      }
      needKey = false;
      lastSubmitted = seq;
      pub.set(seq, at);
      if (pub.size > 300) pub.delete(pub.keys().next().value);
    }
    function handle(m) { if (typeof m === 'string') config(m); else chunk(m); }

    return {
      push(m) {
        if (checking) {
          inbox.push(m);
          if (inbox.length > INBOX_MAX) { /* keep the configuration, drop the frames */
            inbox = inbox.filter((x) => typeof x === 'string').slice(-1);
            needKey = true;
          }
          return;
        }
        handle(m);
      },
      close() {
        if (pending) { pending.close(); pending = null; }
        if (dec && dec.state !== 'closed') { try { dec.close(); } catch (e) { /* already closed */ } }
        dec = null; inbox = []; pub.clear();
      },
    };
  }

  function probe1() { /* the first MJPEG frame: count it now rather than on the next display frame */
    const r = window.sluiceScanFrame(img);
    if (r && lastCode === -2) { lastCode = r.code; lastHash = r.hash; gotFrame(r.code, r.width, r.height); }
  }

  function retry(why) {
    keepLastFrame();
    stop();
    const delay = Math.min(10000, 500 * Math.pow(2, attempt)) * (0.8 + 0.4 * Math.random());
    attempt++;
    setState('connecting', 'Reconnecting in ' + Math.ceil(delay / 1000) + ' s… (' + why + ')');
    retryTimer = setTimeout(open, delay);
  }

  /* An MJPEG stream that ends keeps showing its last frame and fires no
   * event, so a stream that shows no new frame for a while is reopened: 3 s,
   * or five frame intervals when slower; 15 s for pictures without a block
   * code (identical frames of a still scene cannot be told apart). */
  setInterval(() => {
    showInfo();
    if (document.hidden || V.state === 'released' || V.state === 'unsupported' || retryTimer) return;
    const quiet = performance.now() - lastFrameAt;
    const n = times.length, avg = n > 1 ? (times[n - 1] - times[0]) / (n - 1) : 0;
    const sure = V.mode !== 'mjpeg' || lastCode >= 0;
    const limit = V.state !== 'playing' ? 10000
      : Math.max(sure ? 3000 : 15000, 5 * avg, fpsCap > 0 ? 5000 / fpsCap : 0);
    if (quiet > limit) retry('no new frame for ' + Math.round(quiet / 1000) + ' s');
  }, 250);

  /* ---- background: hold no connection while hidden or frozen ---------- */
  function release() {
    clearTimeout(hideTimer); hideTimer = 0;
    if (keep || V.state === 'released') return;
    keepLastFrame();
    stop();
    setState('released', 'Paused while the page is in the background');
  }
  function resumeNow() {
    clearTimeout(hideTimer); hideTimer = 0;
    if (V.state === 'released') { attempt = 0; open(); }
  }
  function armHide() {
    clearTimeout(hideTimer);
    hideTimer = setTimeout(release, RELEASE_AFTER_MS);
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') armHide();
    else { resumeNow(); lastFrameAt = performance.now(); }
  });
  /* A frozen page runs no timers, so it lets go at once. */
  document.addEventListener('freeze', release);
  /* Unfrozen but still in the background: stay released until shown. */
  document.addEventListener('resume', () => { if (!document.hidden) resumeNow(); });
  window.addEventListener('pagehide', (e) => { if (e.persisted) release(); });
  window.addEventListener('pageshow', (e) => { if (e.persisted) resumeNow(); });

  /* ---- controls ------------------------------------------------------- */
  const fpsSel = $('fps-select'), streamSel = $('stream-select');
  if (![...fpsSel.options].some((o) => o.value === String(fpsCap))) fpsSel.add(new Option(String(fpsCap), String(fpsCap)));
  fpsSel.value = String(fpsCap);

  function remember() {
    const p = new URLSearchParams(location.search);
    p.set('mode', jpegMode);
    if (fpsCap > 0) p.set('fps', fpsCap); else p.delete('fps');
    if (cur.name && streams.length > 1) p.set('stream', cur.name);
    history.replaceState(null, '', '?' + p.toString());
  }
  /* The mode follows the stream: H.264 streams decode with WebCodecs,
   * MJPEG streams use the transport chosen with the buttons. */
  function setMode(m) {
    if (m === 'mjpeg' || m === 'ws') jpegMode = m;
    V.mode = cur.kind === 'h264' ? 'h264' : jpegMode;
    V.kind = cur.kind;
    $('mode-mjpeg').setAttribute('aria-pressed', String(V.mode === 'mjpeg'));
    $('mode-ws').setAttribute('aria-pressed', String(V.mode === 'ws'));
    $('mode-mjpeg').hidden = $('mode-ws').hidden = V.mode === 'h264';
    $('mode-h264').hidden = V.mode !== 'h264';
    for (const e of document.querySelectorAll('.h264-only')) e.hidden = V.mode !== 'h264';
    /* An H.264 viewer gets every frame (a P-frame needs the one before),
     * so the server has no rate to cap: the control does not apply. */
    fpsSel.disabled = V.mode === 'h264';
    fpsSel.title = V.mode === 'h264' ? 'H.264 streams play at their own rate' : '';
  }
  function restart() { /* a new choice of stream, transport or rate: start afresh */
    stale = false; canvas.width = canvas.height = 0;
    attempt = 0; V.frames = 0; V.frameNo = -1; V.width = V.height = 0; V.stream = cur.name;
    V.decoded = V.errors = V.received = V.keyframes = V.gaps = V.skipped = V.resyncs = V.breaks = 0;
    V.latencyMs = V.latencyAvgMs = null; V.lastSeq = -1; V.codec = null; V.lastError = V.lastClose = null; lats = [];
    setMode(null);
    remember();
    if (V.state !== 'released' || !document.hidden) open();
  }

  $('mode-mjpeg').onclick = () => { if (V.mode !== 'mjpeg') { setMode('mjpeg'); restart(); } };
  $('mode-ws').onclick = () => { if (V.mode !== 'ws') { setMode('ws'); restart(); } };
  fpsSel.onchange = () => { fpsCap = parseFloat(fpsSel.value) || 0; restart(); };
  streamSel.onchange = () => {
    const s = streams.find((x) => x.name === streamSel.value);
    if (s) { cur = s; setMode(null); restart(); }
  };
  V.setMode = (m) => { setMode(m); restart(); };
  V.setFps = (f) => { fpsCap = f; fpsSel.value = String(f); restart(); };

  setMode(V.mode);
  showInfo();
  if (document.hidden) armHide(); /* opened in a background tab */

  /* ---- streams -------------------------------------------------------- */
  /* The stream list says which stream this page shows and its kind, so
   * nothing opens before it answers (an H.264 stream has no MJPEG to try);
   * without an answer within 3 s the page plays its own stream as MJPEG. */
  const want = params.get('stream');
  let started = false;
  fetch(url('/api/streams'), { cache: 'no-store', signal: AbortSignal.timeout ? AbortSignal.timeout(3000) : undefined })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
    .then((j) => {
      streams = (j && Array.isArray(j.streams) ? j.streams : []).filter((s) => s && s.name && (s.ws || s.mjpeg || s.base))
        .map((s) => Object.assign({}, s, {
          kind: s.kind === 'h264' ? 'h264' : 'mjpeg',
          codec: typeof s.codec === 'string' && s.codec ? s.codec : null,
          ws: s.ws || (s.mjpeg ? s.mjpeg.replace(/[^/]*$/, 'ws') : s.base + 'ws'),
          mjpeg: s.mjpeg || (s.base || '/') + 'stream.mjpg',
        }));
      if (!streams.length) throw new Error('no streams');
      const here = url(cur.ws);
      const pick = streams.find((s) => s.name === want) ||
        streams.find((s) => url(s.ws) === here) || streams[0];
      streamSel.textContent = '';
      for (const s of streams)
        streamSel.add(new Option(s.name + (s.kind === 'h264' ? ' · H.264' : ' · MJPEG') + (s.width ? ' · ' + s.width + '×' + s.height : ''), s.name));
      streamSel.value = pick.name;
      $('stream-pick').hidden = streams.length < 2;
      cur = pick;
      V.stream = pick.name;
      setMode(null);
      if (!started) { started = true; if (V.state !== 'released') open(); }
      showInfo();
    })
    .catch(() => { if (!started) { started = true; if (V.state !== 'released') open(); } });
})();

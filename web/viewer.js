/* sluice viewer: MJPEG <img> or WebSocket <canvas>, stream picker, fps cap,
 * live info, reconnect with backoff, and no connection held in background.
 *
 * Page query parameters (all optional): token=… (added to every request),
 * stream=<name>, mode=mjpeg|ws, fps=<cap>, policy=<hub policy>, keep=1 (do
 * not release the stream while hidden or frozen; for tests of the server).
 *
 * window.sluiceViewer (for tests): {state: 'playing'|'released'|'connecting',
 * frames, mode: 'mjpeg'|'ws', frameNo, fps, width, height, stream, url}. */
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

  const V = window.sluiceViewer = {
    state: 'connecting', frames: 0, mode: params.get('mode') === 'ws' ? 'ws' : 'mjpeg',
    frameNo: -1, fps: 0, width: 0, height: 0, stream: null, url: '',
  };
  let fpsCap = Math.max(0, parseFloat(params.get('fps')) || 0);
  /* The current stream: page-relative until /api/streams says more. */
  let cur = { name: null, mjpeg: 'stream.mjpg', ws: 'ws', source: '' };
  let streams = [];

  let gen = 0;              /* bumped on every (re)connect; stale events are ignored */
  let sock = null, retryTimer = 0, hideTimer = 0, attempt = 0;
  let lastFrameAt = 0, lastHash = -1, lastCode = -2, times = [];
  let stale = false;        /* the canvas holds the last frame, shown dimmed while away */

  function setState(s, text) {
    V.state = s;
    const pill = $('state');
    pill.textContent = s === 'released' ? 'paused' : s;
    pill.className = 'pill ' + (s === 'playing' ? 'ok' : s === 'connecting' ? 'warn' : '');
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
  function streamParams() { return { fps: fpsCap > 0 ? fpsCap : null, policy }; }

  function stop() {
    gen++;
    clearTimeout(retryTimer); retryTimer = 0;
    if (img.getAttribute('src') !== null) img.removeAttribute('src');
    if (sock) {
      sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
      try { sock.close(1000); } catch (e) { /* already closed */ }
      sock = null;
    }
  }

  function open() {
    stop();
    const g = gen;
    lastFrameAt = performance.now(); lastHash = -1; lastCode = -2; times = [];
    setState('connecting', attempt ? 'Reconnecting…' : 'Connecting…');
    if (V.mode === 'mjpeg') {
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
    if (document.hidden || V.state === 'released' || retryTimer) return;
    const quiet = performance.now() - lastFrameAt;
    const n = times.length, avg = n > 1 ? (times[n - 1] - times[0]) / (n - 1) : 0;
    const sure = V.mode === 'ws' || lastCode >= 0;
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
    p.set('mode', V.mode);
    if (fpsCap > 0) p.set('fps', fpsCap); else p.delete('fps');
    if (cur.name && streams.length > 1) p.set('stream', cur.name);
    history.replaceState(null, '', '?' + p.toString());
  }
  function setMode(m) {
    V.mode = m === 'ws' ? 'ws' : 'mjpeg';
    $('mode-mjpeg').setAttribute('aria-pressed', String(V.mode === 'mjpeg'));
    $('mode-ws').setAttribute('aria-pressed', String(V.mode === 'ws'));
  }
  function restart() { /* a new choice of stream, transport or rate: start afresh */
    stale = false; canvas.width = canvas.height = 0;
    attempt = 0; V.frames = 0; V.frameNo = -1; V.width = V.height = 0; V.stream = cur.name;
    remember();
    if (V.state !== 'released' || !document.hidden) open();
  }

  $('mode-mjpeg').onclick = () => { if (V.mode !== 'mjpeg') { setMode('mjpeg'); restart(); } };
  $('mode-ws').onclick = () => { if (V.mode !== 'ws') { setMode('ws'); restart(); } };
  fpsSel.onchange = () => { fpsCap = parseFloat(fpsSel.value) || 0; restart(); };
  streamSel.onchange = () => {
    const s = streams.find((x) => x.name === streamSel.value);
    if (s) { cur = s; restart(); }
  };
  V.setMode = (m) => { setMode(m); restart(); };
  V.setFps = (f) => { fpsCap = f; fpsSel.value = String(f); restart(); };

  setMode(V.mode);
  showInfo();
  if (document.hidden) armHide(); /* opened in a background tab */

  /* ---- streams -------------------------------------------------------- */
  const want = params.get('stream');
  let started = false;
  if (!want) { open(); started = true; }
  fetch(url('/api/streams'), { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))))
    .then((j) => {
      streams = (j && Array.isArray(j.streams) ? j.streams : []).filter((s) => s && s.name && s.mjpeg)
        .map((s) => (s.ws ? s : Object.assign({}, s, { ws: s.mjpeg.replace(/[^/]*$/, 'ws') })));
      if (!streams.length) throw new Error('no streams');
      const here = url(cur.mjpeg);
      const pick = streams.find((s) => s.name === want) ||
        streams.find((s) => url(s.mjpeg) === here) || streams[0];
      streamSel.textContent = '';
      for (const s of streams) streamSel.add(new Option(s.name + (s.width ? ' · ' + s.width + '×' + s.height : ''), s.name));
      streamSel.value = pick.name;
      $('stream-pick').hidden = streams.length < 2;
      const change = url(pick.mjpeg) !== here;
      cur = pick;
      V.stream = pick.name;
      if (!started || (change && V.state !== 'released')) { started = true; open(); }
      showInfo();
    })
    .catch(() => { if (!started) { started = true; open(); } });
})();

/* sluice viewer: MJPEG <img> or WebSocket <canvas> for MJPEG streams,
 * WebCodecs decoding onto the <canvas> (h264dec.js) or a Media Source
 * Extensions <video> for H.264 streams; stream picker, fps cap, live info,
 * reconnect with backoff (reconnect.js), and no connection held in background.
 *
 * Page query parameters (all optional): token=… (added to every request),
 * stream=<name>, mode=mjpeg|ws (the transport of MJPEG streams) or
 * mode=h264|mse (the player of H.264 streams: WebCodecs, or Media Source
 * Extensions; without it WebCodecs where it takes the stream's codec, else
 * MSE), fps=<cap>, policy=<hub policy>,
 * keep=1 (do not release the stream while hidden or frozen; for tests of the
 * server).
 *
 * window.sluiceViewer (for tests): {state: 'playing'|'released'|'connecting'|
 * 'unsupported', frames (drawn), mode: 'mjpeg'|'ws'|'h264'|'mse', frameNo (block
 * code of the picture shown), fps, width, height, stream, kind, url, connects
 * (streams opened, reconnects included), and for
 * H.264: decoded (frames out of the decoder), errors (decoder errors),
 * received, keyframes, gaps (keyframes the server flagged as after a skip),
 * skipped (frames dropped here while waiting for a keyframe), breaks (delta
 * frames that did not follow the frame before them: a reference missing),
 * resyncs
 * (decoder resets), latencyMs (Date.now() minus the server's publish time of
 * the frame last drawn), latencyAvgMs (its mean over 2 s), lastSeq (server
 * frame number of the frame last drawn), codec, lastError, fallback (why an
 * H.264 stream plays with MSE when WebCodecs was not asked against: null
 * otherwise), and for MSE: presented (frames the <video> presented),
 * currentTime, buffered ([[start, end], ...] in seconds), ahead (buffered
 * end minus currentTime), seeks (jumps to near the live edge), rateMs (time
 * played faster than 1x to catch up), dropped (fragments dropped here,
 * queued while the page could not append them), trimmed (seconds removed
 * from the SourceBuffer), source ('MediaSource'|'ManagedMediaSource'),
 * configs (init segments appended); latencyMs and lastSeq are then those of
 * the frame presented, mapped back from its media time}. */
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
  /* The player chosen for H.264 streams: 'h264' (WebCodecs), 'mse', or
   * null (WebCodecs where it takes the codec, else MSE). */
  const pm = params.get('mode');
  let avcPref = pm === 'mse' ? 'mse' : pm === 'h264' || pm === 'webcodecs' ? 'h264' : null;
  let avcMode = avcPref || 'h264'; /* what plays now (a fallback may switch it) */
  const video = $('video');
  const h264dec = window.sluiceH264; /* h264dec.js: the WebCodecs decoder, arrival counters */
  const V = window.sluiceViewer = {
    state: 'connecting', frames: 0, mode: jpegMode,
    frameNo: -1, fps: 0, width: 0, height: 0, stream: null, kind: 'mjpeg', url: '', connects: 0,
    decoded: 0, errors: 0, received: 0, keyframes: 0, gaps: 0, skipped: 0, resyncs: 0, breaks: 0,
    latencyMs: null, latencyAvgMs: null, lastSeq: -1, codec: null, lastError: null, lastClose: null,
    fallback: null, presented: 0, currentTime: 0, buffered: [], ahead: 0, seeks: 0, rateMs: 0, dropped: 0,
    trimmed: 0, source: null, configs: 0,
  };
  let fpsCap = Math.max(0, parseFloat(params.get('fps')) || 0);
  /* The current stream: page-relative until /api/streams says more. */
  let cur = { name: null, mjpeg: 'stream.mjpg', ws: 'ws', source: '', kind: 'mjpeg', codec: null };
  let streams = [];

  let gen = 0;              /* bumped on every (re)connect; stale events are ignored */
  let sock = null, hideTimer = 0;
  const backoff = window.sluiceReconnect(open); /* reconnect.js */
  let lastFrameAt = 0, lastHash = -1, lastCode = -2, times = [], lats = [];
  let h264 = null;          /* the H.264 session of the open socket (WebCodecs or MSE) */
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
    let el, w, h;
    if (V.mode === 'mjpeg' && img.naturalWidth && img.getAttribute('src') !== null && !img.hidden) {
      el = img; w = img.naturalWidth; h = img.naturalHeight;
    } else if (V.mode === 'mse' && !video.hidden && video.videoWidth && video.readyState >= 2) {
      el = video; w = video.videoWidth; h = video.videoHeight; /* the <video> loses its source too */
    } else return;
    canvas.width = w; canvas.height = h;
    try { canvas.getContext('2d').drawImage(el, 0, 0, w, h); } catch (e) { return; }
    stale = true; canvas.hidden = false; el.hidden = true;
  }

  /* ---- frames and info ------------------------------------------------ */
  function gotFrame(code, w, h) {
    const now = performance.now();
    V.frames++;
    lastFrameAt = now;
    backoff.reset();
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
    const h = V.mode === 'h264' || V.mode === 'mse';
    $('buffer').textContent = V.mode === 'mse' && V.state === 'playing' ? V.ahead.toFixed(2) + ' s' +
      (V.seeks ? ' · ' + V.seeks + (V.seeks === 1 ? ' jump' : ' jumps') : '') : '–';
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
  function streamParams() { return { fps: fpsCap > 0 && V.kind !== 'h264' ? fpsCap : null, policy }; }

  function stop() {
    gen++;
    backoff.cancel();
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
    setState('connecting', backoff.attempts() ? 'Reconnecting…' : 'Connecting…');
    if (V.mode !== 'mse') video.hidden = true;
    if (V.mode === 'h264') {
      openH264(g);
    } else if (V.mode === 'mse') {
      openMse(g);
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
      s.onclose = (e) => { if (g === gen) retry(window.sluiceCloseWhy(e)); };
      s.onerror = () => {}; /* onclose follows */
    }
  }
  /* ---- H.264 over the WebSocket -------------------------------------- */
  /* Messages of /ws for H.264 streams (docs/h264.md): a text
   * {"type":"config", codec, width, height, fps} before the first frame it
   * applies to, and binary ones with a 16-byte header: byte 0 the type
   * (1 = an Annex-B access unit, 2 = an fMP4 init segment, 3 = one moof+mdat
   * fragment), byte 1 flags (bit 0 keyframe, bit 1 gap), bytes 4..7 the
   * frame number and 8..15 the publish time (Unix ms), both big-endian, then
   * the payload. */
  function wsConfig(text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return null; }
    return m && m.type === 'config' && typeof m.codec === 'string' ? m : null;
  }
  /* {type, key, gap, seq, at, data}, or null for a message without a payload. */
  function wsUnit(buf) {
    if (!(buf instanceof ArrayBuffer) || buf.byteLength <= 16) return null;
    const dv = new DataView(buf), flags = dv.getUint8(1);
    return { type: dv.getUint8(0), key: (flags & 1) !== 0, gap: (flags & 2) !== 0, seq: dv.getUint32(4),
      at: dv.getUint32(8) * 4294967296 + dv.getUint32(12), data: new Uint8Array(buf, 16) };
  }
  /* Whether this browser's MediaSource (ManagedMediaSource first: the one
   * iOS Safari has) plays fMP4 of `codec`: {ok, why}. */
  function mseClass() { return window.ManagedMediaSource || window.MediaSource || null; }
  const mseType = (codec) => 'video/mp4; codecs="' + (codec || 'avc1.42e01e') + '"';
  function mseSupport(codec) {
    const MS = mseClass();
    if (!MS) return { ok: false, why: 'it has no MediaSource' };
    try { if (MS.isTypeSupported(mseType(codec))) return { ok: true }; } catch (e) { /* treated as no */ }
    return { ok: false, why: 'its MediaSource does not play ' + mseType(codec) };
  }
  function unsupported(why, mseWhy) {
    stop();
    setState('unsupported', 'This browser cannot decode H.264 with WebCodecs' + (why ? '; ' + why : '') +
      (mseWhy ? ', nor play it with Media Source Extensions: ' + mseWhy : '') +
      '. MJPEG streams still play here; for this one use a browser with WebCodecs H.264 ' +
      '(Chrome, Edge, Safari 16.4+, Firefox 130+) or MSE, or a player such as ffplay or VLC on ' + url(cur.base ? cur.base + 'stream.h264' : 'stream.h264').replace(/\?.*$/, '') + '.');
  }
  /* WebCodecs cannot play this stream: MSE plays it instead unless
   * WebCodecs was asked for by name (then the page says why it cannot). */
  function noWebCodecs(why) {
    const m = mseSupport(V.codec || cur.codec);
    if (avcPref === 'h264' || !m.ok) { unsupported(why, m.ok ? 'not tried, WebCodecs was chosen' : m.why); return; }
    V.fallback = 'WebCodecs: ' + why;
    avcMode = 'mse';
    setMode(null);
    open();
  }
  function onClose(g) {
    return (e) => {
      if (g !== gen) return;
      V.lastClose = { code: e.code, reason: e.reason, clean: e.wasClean, sinceFrameMs: Math.round(performance.now() - lastFrameAt) };
      retry(window.sluiceCloseWhy(e));
    };
  }

  /* The H.264 socket of open(): `make()` gives the session its messages go to. */
  function openAvcSocket(g, params, make) {
    V.url = url(cur.ws, params, true);
    let s;
    try { s = sock = new WebSocket(V.url); } catch (e) { retry('cannot open WebSocket'); return; }
    s.binaryType = 'arraybuffer';
    h264 = make();
    s.onmessage = (e) => { if (g === gen && h264) h264.push(e.data); };
    s.onclose = onClose(g);
    s.onerror = () => {};
  }

  /* ---- H.264 decoded with WebCodecs (h264dec.js) onto the <canvas> ------ */
  function openH264(g) {
    img.hidden = true; canvas.hidden = false;
    if (!window.VideoDecoder) { h264dec.support('').then((r) => { if (g === gen) noWebCodecs(r.why); }); return; }
    /* The codec the stream list gave: an unsupported one opens no socket. */
    const pre = cur.codec ? h264dec.support(cur.codec) : Promise.resolve({ ok: true });
    pre.then((r) => {
      if (g !== gen) return;
      if (!r.ok) { noWebCodecs(r.why); return; }
      openAvcSocket(g, streamParams(), () => webCodecsSession(g));
    });
  }
  /* One socket's worth of WebCodecs decoding: its counters are V's, and a
   * frame drawn updates the frame number, latency and frame rate. */
  function webCodecsSession(g) {
    const d = h264dec.session({
      canvas, stats: V,
      live: () => g === gen,
      unsupported: noWebCodecs,
      drawn: (seq, at, w, h) => {
        V.lastSeq = seq;
        if (at !== undefined) {
          V.latencyMs = Date.now() - at;
          lats.push([performance.now(), V.latencyMs]);
        }
        stale = true;
        gotFrame(window.readBlockCode(canvas), w, h);
      },
    });
    return {
      push(m) {
        if (typeof m === 'string') { const c = wsConfig(m); if (c) d.push({ config: c }); return; }
        const u = wsUnit(m);
        if (u && u.type === 1) d.push(u);
      },
      close() { d.close(); },
    };
  }

  /* ---- H.264 as fMP4 over the WebSocket, played with MSE -------------- */
  function openMse(g) {
    img.hidden = true; canvas.hidden = !stale; /* the <video> shows once it presents a frame */
    const m = mseSupport(cur.codec);
    if (!m.ok) {
      stop();
      setState('unsupported', 'This browser cannot play H.264 with Media Source Extensions: ' + m.why +
        (window.VideoDecoder ? '. Try the WebCodecs player.' : '.'));
      return;
    }
    openAvcSocket(g, Object.assign(streamParams(), { format: 'fmp4' }), () => mseSession(g));
  }

  /* One socket's worth of MSE playback. Messages (wsUnit above): the text
   * config message, then type 2 (an init segment, after each config
   * message) and type 3 (one moof+mdat fragment per frame). Payloads go to
   * one SourceBuffer in arrival order.
   *
   * Timestamp gaps: when the server skips frames for this viewer (up to the
   * next IDR), the tfdt of the next fragment jumps ahead. The SourceBuffer
   * runs in 'sequence' mode, which places each fragment right after the one
   * before whatever its tfdt says, so a skip leaves no hole in the buffered
   * range: nothing to detect or seek over, playback never stalls at a gap,
   * and the fragments this page drops itself (below) are handled the same
   * way. Seeking over holes ('segments' mode) would need a gap watcher and a
   * seek per skip, each a visible stall. The cost: media time is no longer
   * stream time, so each fragment's place is read back (tfdt +
   * timestampOffset once appended) into a table of media time -> frame
   * number and publish time, which the latency and frame number of the
   * presented picture are looked up in.
   *
   * Latency: the buffer is kept short, TARGET_S behind its end. Ahead by
   * more than RATE_FROM_S, the video plays at RATE (slightly fast, no visible
   * jump) until it is back at TARGET_S; ahead by more than SEEK_FROM_S (the
   * join burst of the GOP since the last IDR, a tab that was busy), it
   * jumps to TARGET_S before the end. V.seeks and V.rateMs say which was
   * used. What it has played is removed from the SourceBuffer (up to the
   * last keyframe at least KEEP_S behind the playhead: removing frames
   * removes what depends on them up to the next keyframe, so cutting
   * elsewhere could remove the frames being played). */
  function mseSession(g) {
    const TARGET_S = 0.1, RATE_FROM_S = 0.2, SEEK_FROM_S = 1, RATE = 1.1, KEEP_S = 1;
    /* Fragments waiting for the SourceBuffer: the join burst (the GOP since
     * the last IDR, at most the server's gop_max, 4 MiB by default) fits. */
    const QUEUE_MAX = 600, QUEUE_BYTES = 4 << 20;
    const MS = mseClass();
    const managed = !!window.ManagedMediaSource && MS === window.ManagedMediaSource;
    V.source = managed ? 'ManagedMediaSource' : 'MediaSource';
    const ms = new MS();
    /* ManagedMediaSource plays only if AirPlay is off or has another source. */
    if (managed) video.disableRemotePlayback = true;
    video.muted = true; video.playsInline = true;
    const src = URL.createObjectURL(ms);
    video.src = src;
    let sb = null, sbCodec = null, opened = false, closed = false, cfgCodec = null, haveInit = false;
    let queue = [], queued = 0, busy = null, needKey = true, timescale = 90000;
    const arrive = h264dec.arrivals(V); /* received, keyframes, gaps, breaks */
    let map = [];          /* [media time s, frame number, publish ms, key] per fragment appended */
    let lastPf = -1, lastTrim = 0, lastTick = performance.now(), lastTotal = 0;

    ms.addEventListener('sourceopen', () => { opened = true; pump(); });
    video.onerror = () => {
      if (g !== gen || closed) return;
      V.errors++;
      V.lastError = video.error ? 'MediaError ' + video.error.code + ': ' + (video.error.message || '') : 'media error';
      retry('media error');
    };

    function fail(e, what) {
      V.errors++;
      V.lastError = what + ': ' + ((e && (e.name + ': ' + e.message)) || String(e));
      retry(what);
    }
    /* The timescale of the track (mdhd), for tfdt. */
    function readTimescale(u8) {
      for (let i = 4; i + 24 <= u8.length; i++) {
        if (u8[i] === 0x6d && u8[i + 1] === 0x64 && u8[i + 2] === 0x68 && u8[i + 3] === 0x64) { /* 'mdhd' */
          const dv = new DataView(u8.buffer, u8.byteOffset + i + 4);
          const ts = dv.getUint32(dv.getUint8(0) === 1 ? 20 : 12);
          return ts > 0 ? ts : timescale;
        }
      }
      return timescale;
    }
    /* Rewrites a fragment's baseMediaDecodeTime (layout of docs/fmp4.md:
     * tfdt version 1 at byte 48 of the moof, trun at 68 with the sample
     * duration at 88) to follow the one before without a hole: returns its
     * new time in seconds, or NaN for another layout (appended as it is).
     * Why: MSE's coded frame processing calls a decode time that moves on
     * by more than twice the last frame's duration a discontinuity, and
     * then drops every frame up to the next keyframe (up to a GOP, seconds
     * of picture). The server's tfdt is its publish clock and a sample's
     * duration the interval before it, so a frame published late after one
     * published early trips that rule, and so does every skip. Decode times
     * laid end to end by duration keep the frames' own pacing (the sum of
     * the durations follows the publish clock, so the buffer does not drift)
     * and never look like a discontinuity. A duration far over the recent
     * mean (the source paused) is cut to the mean: the wait then happens at
     * the end of the buffer, not as a frame held on screen while the
     * buffer grows behind it. */
    let nextDts = 0, avgDur = 0;
    function retime(u8) {
      if (u8.length < 96 || u8[52] !== 0x74 || u8[53] !== 0x66 || u8[54] !== 0x64 || u8[55] !== 0x74 ||
          u8[56] !== 1 || u8[72] !== 0x74 || u8[73] !== 0x72 || u8[74] !== 0x75 || u8[75] !== 0x6e) return NaN;
      const dv = new DataView(u8.buffer, u8.byteOffset);
      let dur = dv.getUint32(88);
      if (!(dur > 0) || (avgDur && dur > 3 * avgDur)) { dur = Math.round(avgDur || timescale / 30); dv.setUint32(88, dur); }
      avgDur = avgDur ? 0.9 * avgDur + 0.1 * dur : dur;
      const t = nextDts;
      dv.setUint32(60, Math.floor(t / 4294967296)); dv.setUint32(64, t >>> 0);
      nextDts += dur;
      return t / timescale;
    }
    /* Too much waiting to be appended: drop the queued fragments up to the
     * newest queued keyframe (none: all of them, and wait for the next
     * keyframe), so a delta frame is never appended without its reference.
     * Init segments stay. */
    function shed() {
      let k = -1;
      for (let i = queue.length - 1; i >= 0; i--) if (!queue[i].init && queue[i].key) { k = i; break; }
      const before = queue.length;
      if (k < 0) { queue = queue.filter((op) => op.init); needKey = true; }
      else queue = queue.filter((op, i) => op.init || i >= k);
      V.dropped += before - queue.length;
      queued = queue.reduce((n, op) => n + op.data.byteLength, 0);
    }
    function enqueue(op) {
      queue.push(op);
      queued += op.data.byteLength;
      if (queue.length > QUEUE_MAX || queued > QUEUE_BYTES) shed();
      pump();
    }
    /* Remove what was played: up to the newest keyframe KEEP_S or more
     * behind the playhead, once that frees a second or more. */
    function trim() {
      if (!sb || busy || sb.updating || performance.now() - lastTrim < 1000 || !sb.buffered.length) return false;
      const start = sb.buffered.start(0), t = video.currentTime;
      let cut = -1;
      for (const x of map) { if (x[0] > t - KEEP_S) break; if (x[3]) cut = x[0]; }
      if (cut - start < 1) return false;
      lastTrim = performance.now();
      try { sb.remove(start, cut); } catch (e) { return false; }
      busy = { remove: true };
      V.trimmed += cut - start;
      while (map.length && map[0][0] < cut) map.shift();
      return true;
    }
    function pump() {
      /* `busy` until its updateend: `updating` turns false a task before
       * updateend is dispatched, and an append in between would take the
       * end event of the one before. */
      if (closed || g !== gen || !opened || busy || (sb && sb.updating)) return;
      if (trim()) return; /* updateend pumps again */
      const op = queue.shift();
      if (!op) return;
      queued -= op.data.byteLength;
      try {
        if (op.init) {
          timescale = readTimescale(op.data);
          if (!sb) {
            sb = ms.addSourceBuffer(mseType(op.codec));
            sb.mode = 'sequence';
            sb.addEventListener('updateend', updated);
            sb.addEventListener('error', () => { if (g === gen && !closed) { V.errors++; V.lastError = 'SourceBuffer error'; } });
          } else if (op.codec !== sbCodec) {
            /* A new codec string (profile, level): the SourceBuffer switches
             * in place where it can; else a fresh start. */
            if (typeof sb.changeType !== 'function') { retry('codec change'); return; }
            sb.changeType(mseType(op.codec));
          }
          sbCodec = op.codec;
          V.configs++;
        }
        busy = op;
        sb.appendBuffer(op.data);
      } catch (e) {
        busy = null;
        if (e && e.name === 'QuotaExceededError' && !op.init) {
          /* Full (ManagedMediaSource may also have evicted): drop what
           * waits, start again from the next keyframe. */
          queue = queue.filter((x) => x.init); queued = 0; needKey = true; V.dropped++;
          lastTrim = 0;
          return;
        }
        fail(e, op.init ? 'cannot use the init segment' : 'cannot append');
      }
    }
    function updated() {
      if (closed || g !== gen) return;
      const op = busy;
      busy = null;
      if (op && op.seq !== undefined) {
        let t = op.t + sb.timestampOffset;
        if (!isFinite(t) && sb.buffered.length) t = sb.buffered.end(sb.buffered.length - 1) - 1 / 30;
        map.push([t, op.seq, op.at, op.key]);
        if (map.length > 900) map.shift();
        if (video.paused) video.play().catch(() => { /* retried on the next tick */ });
      }
      tick();
      pump();
    }
    /* The frame at media time `mt` is on screen. */
    function presented(mt) {
      let e = null;
      for (let i = map.length - 1; i >= 0; i--) if (map[i][0] <= mt + 0.002) { e = map[i]; break; }
      if (e) {
        V.lastSeq = e[1];
        V.latencyMs = Date.now() - e[2];
        lats.push([performance.now(), V.latencyMs]);
      }
      if (video.hidden && video.videoWidth) { video.hidden = false; canvas.hidden = true; stale = false; }
      gotFrame(window.readBlockCode(video), video.videoWidth, video.videoHeight);
    }
    function onVideoFrame(now, md) {
      if (closed || g !== gen) return;
      video.requestVideoFrameCallback(onVideoFrame);
      V.presented += lastPf >= 0 ? Math.max(1, md.presentedFrames - lastPf) : 1;
      lastPf = md.presentedFrames;
      presented(md.mediaTime);
      tick();
    }
    if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(onVideoFrame);
    else {
      /* No per-frame callback: count the frames the element says it showed. */
      const poll = () => {
        if (closed || g !== gen) return;
        requestAnimationFrame(poll);
        const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
        const n = q ? q.totalVideoFrames - q.droppedVideoFrames : 0;
        if (n > lastTotal) { V.presented += n - lastTotal; lastTotal = n; presented(video.currentTime); }
      };
      requestAnimationFrame(poll);
    }
    /* Stay near the end of the buffer (see above). */
    function tick() {
      if (closed || g !== gen || !sb) return;
      const now = performance.now();
      if (video.playbackRate > 1) V.rateMs += now - lastTick;
      lastTick = now;
      const b = sb.buffered;
      V.buffered = [];
      for (let i = 0; i < b.length; i++) V.buffered.push([+b.start(i).toFixed(3), +b.end(i).toFixed(3)]);
      V.currentTime = video.currentTime;
      if (!b.length) return;
      const end = b.end(b.length - 1), t = video.currentTime;
      V.ahead = Math.max(0, end - t);
      let inside = false;
      for (let i = 0; i < b.length; i++) if (t >= b.start(i) - 0.05 && t < b.end(i)) inside = true;
      if (!inside && t < end) { /* before the first frame (a trim, the start): go to live */
        video.currentTime = Math.max(b.start(b.length - 1), end - TARGET_S); V.seeks++;
      } else if (V.ahead > SEEK_FROM_S) {
        video.currentTime = end - TARGET_S; V.seeks++;
        video.playbackRate = 1;
      } else if (V.ahead > RATE_FROM_S && video.playbackRate === 1) {
        video.playbackRate = RATE;
      } else if (V.ahead <= TARGET_S && video.playbackRate !== 1) {
        video.playbackRate = 1;
      }
      if (video.paused && video.readyState >= 2) video.play().catch(() => { /* muted: allowed; else the next tick */ });
    }

    return {
      tick,
      push(m) {
        if (closed) return;
        if (typeof m === 'string') {
          const c = wsConfig(m);
          if (c) { cfgCodec = c.codec; V.codec = c.codec; }
          return;
        }
        const u = wsUnit(m);
        if (!u) return;
        if (u.type === 2) { /* a new init: what follows starts at a keyframe */
          haveInit = true; needKey = true;
          enqueue({ init: true, codec: cfgCodec || cur.codec || 'avc1.42e01e', data: u.data });
          return;
        }
        if (u.type !== 3) return;
        if (arrive(u)) needKey = true;
        if (!haveInit || (needKey && !u.key)) { V.skipped++; return; }
        needKey = false;
        enqueue({ key: u.key, seq: u.seq, at: u.at, data: u.data, t: retime(u.data) });
      },
      close() {
        closed = true; queue = []; queued = 0; map = [];
        video.onerror = null;
        try { if (sb && sb.updating) sb.abort(); } catch (e) { /* closing anyway */ }
        video.playbackRate = 1;
        video.removeAttribute('src');
        try { video.load(); } catch (e) { /* nothing loaded */ }
        URL.revokeObjectURL(src);
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
    const delay = backoff.schedule();
    setState('connecting', 'Reconnecting in ' + Math.ceil(delay / 1000) + ' s… (' + why + ')');
  }

  /* An MJPEG stream that ends keeps showing its last frame and fires no
   * event, so a stream that shows no new frame for a while is reopened: 3 s,
   * or five frame intervals when slower; 15 s for pictures without a block
   * code (identical frames of a still scene cannot be told apart). */
  setInterval(() => {
    if (h264 && h264.tick) h264.tick();
    showInfo();
    if (document.hidden || V.state === 'released' || V.state === 'unsupported' || backoff.pending()) return;
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
    if (V.state === 'released') { backoff.reset(); open(); }
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
    p.set('mode', cur.kind === 'h264' && avcPref ? avcPref : jpegMode);
    if (fpsCap > 0) p.set('fps', fpsCap); else p.delete('fps');
    if (cur.name && streams.length > 1) p.set('stream', cur.name);
    history.replaceState(null, '', '?' + p.toString());
  }
  /* The mode follows the stream: H.264 streams play with WebCodecs or MSE
   * (chosen with their buttons, or WebCodecs where it can), MJPEG streams
   * use the transport chosen with theirs. */
  function setMode(m) {
    if (m === 'mjpeg' || m === 'ws') jpegMode = m;
    if (m === 'h264' || m === 'mse') { avcPref = avcMode = m; V.fallback = null; }
    const avc = cur.kind === 'h264';
    V.mode = avc ? avcMode : jpegMode;
    V.kind = cur.kind;
    for (const k of ['mjpeg', 'ws', 'h264', 'mse']) $('mode-' + k).setAttribute('aria-pressed', String(V.mode === k));
    $('mode-mjpeg').hidden = $('mode-ws').hidden = avc;
    $('mode-h264').hidden = $('mode-mse').hidden = !avc;
    for (const e of document.querySelectorAll('.h264-only')) e.hidden = !avc;
    for (const e of document.querySelectorAll('.mse-only')) e.hidden = V.mode !== 'mse';
    /* An H.264 viewer gets every frame (a P-frame needs the one before),
     * so the server has no rate to cap: the control does not apply. */
    fpsSel.disabled = avc;
    fpsSel.title = avc ? 'H.264 streams play at their own rate' : '';
  }
  function restart() { /* a new choice of stream, transport or rate: start afresh */
    stale = false; canvas.width = canvas.height = 0;
    backoff.reset(); V.frames = 0; V.frameNo = -1; V.width = V.height = 0; V.stream = cur.name;
    V.decoded = V.errors = V.received = V.keyframes = V.gaps = V.skipped = V.resyncs = V.breaks = 0;
    V.latencyMs = V.latencyAvgMs = null; V.lastSeq = -1; V.codec = null; V.lastError = V.lastClose = null; lats = [];
    V.presented = V.seeks = V.rateMs = V.dropped = V.trimmed = V.configs = V.currentTime = V.ahead = 0; V.buffered = [];
    setMode(null);
    remember();
    if (V.state !== 'released' || !document.hidden) open();
  }

  $('mode-mjpeg').onclick = () => { if (V.mode !== 'mjpeg') { setMode('mjpeg'); restart(); } };
  $('mode-ws').onclick = () => { if (V.mode !== 'ws') { setMode('ws'); restart(); } };
  $('mode-h264').onclick = () => { if (V.mode !== 'h264') { setMode('h264'); restart(); } };
  $('mode-mse').onclick = () => { if (V.mode !== 'mse') { setMode('mse'); restart(); } };
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

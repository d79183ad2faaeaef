/* sluice H.264 decoding with WebCodecs, shared by the viewer (/) and the
 * grid (/grid): one decoder per stream, fed the Annex-B access units of a
 * WebSocket (docs/h264.md; over /mux, docs/mux.md), drawing onto a canvas.
 *
 * window.sluiceH264.support(codec): a promise of {ok, why}, asked once per
 * codec ('' asks only whether the browser has WebCodecs at all).
 *
 * window.sluiceH264.session(o): one stream's worth of decoding, with
 *   o.canvas            where frames are drawn;
 *   o.stats             an object whose counters it updates: decoded, errors,
 *                       received, keyframes, gaps, skipped, resyncs, breaks
 *                       (see viewer.js), and codec, lastError;
 *   o.live()            optional: false once the caller moved on (events of
 *                       the session are then ignored);
 *   o.drawn(seq, at, w, h)  after a frame is drawn: its server frame number,
 *                       its publish time (Unix ms, or undefined), its size;
 *   o.unsupported(why)  the browser cannot decode this stream's codec.
 * It returns {push(m), close()}; m is {config: {codec, width, height, fps}}
 * (a `config` message, before the frames it applies to) or {key, gap, seq,
 * at, data} (one access unit: keyframe and gap flags, frame number, publish
 * time, the Annex-B bytes as a Uint8Array).
 *
 * The decoder starts at a keyframe (the server sends the GOP since its last
 * IDR first) and after an error is reset and fed again from the next
 * keyframe.
 *
 * window.sluiceH264.arrivals(stats): the counting of received, keyframes,
 * gaps and breaks that a session does, for another player of the same
 * stream (the viewer's MSE player): a function of one access unit {key, gap,
 * seq} that counts it and returns true for a break (a delta frame that does
 * not follow the frame before it: its reference is missing). */
(function () {
  'use strict';
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

  /* The arrival counters of one stream of access units, kept in `V`:
   * received, keyframes, gaps (keyframes flagged as after a skip) and breaks.
   * The server skips only to a keyframe, so a delta frame follows the frame
   * before it; one that does not lacks its reference and is a break. Returns
   * a function that counts the unit {key, gap, seq} given it and says
   * whether it is a break. */
  function arrivals(V) {
    let last = -1;
    return (u) => {
      V.received++;
      if (u.gap) V.gaps++;
      if (u.key) V.keyframes++;
      const follows = last < 0 || u.seq === ((last + 1) >>> 0);
      last = u.seq;
      if (u.key || follows) return false;
      V.breaks++;
      return true;
    };
  }

  function session(o) {
    const canvas = o.canvas, ctx = canvas.getContext('2d'), V = o.stats;
    const INBOX_MAX = 600, QUEUE_MAX = 90; /* 20 s / 3 s of 30 fps */
    let dec = null, cfg = null, checking = false, needKey = true, lastSubmitted = -1, closed = false;
    let pending = null, drawnAt = performance.now(), inbox = [];
    const arrive = arrivals(V);
    const pub = new Map(); /* frame number -> publish time, until drawn */
    const live = () => !closed && (!o.live || o.live());

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
      if (d !== dec || !live()) return;
      V.errors++;
      V.lastError = (e && (e.name + ': ' + e.message)) || String(e);
      if (e && e.name === 'NotSupportedError') { o.unsupported('its decoder failed on ' + cfg.codec); return; }
      V.resyncs++;
      reset(); /* and wait for the next keyframe */
    }
    function onFrame(d, f) {
      if (d !== dec || !live()) { f.close(); return; }
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
      if (!f || !live()) return;
      pending = null;
      drawnAt = performance.now();
      const w = f.displayWidth, h = f.displayHeight, seq = f.timestamp;
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(f, 0, 0, w, h);
      f.close();
      const at = pub.get(seq);
      for (const k of pub.keys()) { if (k > seq) break; pub.delete(k); }
      o.drawn(seq, at, w, h);
    }

    function config(m) {
      if (!m || typeof m.codec !== 'string') return;
      const c = { codec: m.codec, width: m.width | 0, height: m.height | 0, fps: +m.fps || 0 };
      if (cfg && dec && dec.state === 'configured' && c.codec === cfg.codec && c.width === cfg.width && c.height === cfg.height) return;
      cfg = c; V.codec = c.codec;
      checking = true; /* what follows waits in the inbox for the answer */
      h264Support(c.codec).then((r) => {
        if (!live() || cfg !== c) return;
        if (!r.ok) { o.unsupported(r.why); return; }
        checking = false;
        reset();
        while (!checking && inbox.length && live()) handle(inbox.shift());
      });
    }
    function chunk(u) {
      const key = u.key, seq = u.seq;
      /* A delta frame without its reference is not decoded: the picture
       * waits for the next keyframe. */
      if (arrive(u)) needKey = true;
      if (!dec) { V.skipped++; return; } /* before any configuration */
      if (dec.decodeQueueSize > QUEUE_MAX) { /* this page cannot keep up: start again at a keyframe */
        V.resyncs++;
        reset();
      }
      if (needKey && !key) { V.skipped++; return; }
      try {
        dec.decode(new EncodedVideoChunk({ type: key ? 'key' : 'delta', timestamp: seq, data: u.data }));
      } catch (e) {
        V.errors++; V.resyncs++;
        V.lastError = (e && (e.name + ': ' + e.message)) || String(e);
        reset();
        return;
      }
      needKey = false;
      lastSubmitted = seq;
      pub.set(seq, u.at);
      if (pub.size > 300) pub.delete(pub.keys().next().value);
    }
    function handle(m) { if (m.config) config(m.config); else chunk(m); }

    return {
      push(m) {
        if (closed) return;
        if (checking) {
          inbox.push(m);
          if (inbox.length > INBOX_MAX) { /* keep the configuration, drop the frames */
            inbox = inbox.filter((x) => x.config).slice(-1);
            needKey = true;
          }
          return;
        }
        handle(m);
      },
      close() {
        closed = true;
        if (pending) { pending.close(); pending = null; }
        if (dec && dec.state !== 'closed') { try { dec.close(); } catch (e) { /* already closed */ } }
        dec = null; inbox = []; pub.clear();
      },
    };
  }

  window.sluiceH264 = { support: h264Support, session, arrivals };
})();

// The viewer page (/) plays the H.264 test pattern (sluice-stream --codec
// h264, the default stream) in a real Chromium through WebCodecs:
//   - the page chooses the H.264 mode by itself (the stream's kind), its
//     decoder turns out frames and reports no error, and no delta frame
//     arrives whose reference did not (sluiceViewer.breaks);
//   - the block code read back from the <canvas> with the page's own
//     readBlockCode is the server's number of the access unit drawn
//     (sluiceViewer.lastSeq), advances at about the stream's rate, and is
//     within MAX_BEHIND frames of the newest frame the server published
//     (its seq, fetched right after the read) in the median of READS reads;
//   - a page whose WebSocket turns one keyframe (the second one) into
//     garbage counts one decoder error, drops the frames up to the next
//     keyframe, and plays on from it (the picture fresh again);
//   - a page without WebCodecs and MSE (VideoDecoder and MediaSource removed
//     before the page runs) says it cannot decode H.264 and opens no socket
//     (without WebCodecs alone it plays MSE: tests/browser/mse_viewer.js);
//   - on the --mixed server (its default stream the MJPEG pattern, its
//     stream "h264" a relay of this server's /stream.h264), the page opened
//     with ?stream=h264 plays H.264, the stream picker switches it to MJPEG
//     (the <img> shows the pattern, the H.264 viewer leaves) and back to
//     H.264 (decoded with no error, its picture advancing);
//   - the dashboard shows the stream's kind, codec, bitrate and GOP.
'use strict';

const L = require('./lib');

const a = L.args();
const S = a.server;
const M = a.mixed;
const SPAN_MS = 2000;
const READS = 15;
const MAX_BEHIND = 10; /* frames, a third of a second at 30 fps */

const viewerState = (page) => page.evaluate(() => {
  const v = window.sluiceViewer, o = {};
  for (const k of Object.keys(v)) if (typeof v[k] !== 'function') o[k] = v[k];
  return o;
});
/* The code on the canvas and the frame number the page says it drew, in one
 * task of the page (nothing is drawn in between). */
const canvasRead = (page) => page.evaluate(() => ({
  code: window.readBlockCode(document.getElementById('canvas')), lastSeq: window.sluiceViewer.lastSeq,
}));
const streamOf = async (name) => (await L.getJSON(S + '/api/streams')).streams.find((s) => s.name === name);
const statsOf = async (name) => (await L.stats(S)).streams.find((s) => s.name === name);
/* The page's viewers (the mixed server's relay is another, over /stream.h264). */
const wsViewers = async (server, name) => (await L.stats(server)).streams.find((s) => s.name === name)
  .viewers_list.filter((v) => v.transport === 'ws').length;
/* A read within MAX_BEHIND frames of the newest published, within 10 s. */
const fresh = (page) => L.until(`a picture within ${MAX_BEHIND} frames of live`, 10000, async () => {
  const r = await canvasRead(page);
  r.seq = (await statsOf('default')).seq;
  return r.code >= 0 && r.code === r.lastSeq && r.seq - r.code <= MAX_BEHIND ? r : null;
}, 100);
const median = (xs) => { const v = [...xs].sort((x, y) => x - y); return v[Math.floor(v.length / 2)]; };

L.main('h264_viewer', 100000, async () => {
  const list = (await L.getJSON(S + '/api/streams')).streams;
  const st = list[0];
  L.out(`streams: ${list.map((s) => `${s.name} ${s.kind} ${s.codec} ${s.width}x${s.height}`).join(', ')}`);
  L.check(st.kind === 'h264', `the default stream is ${st.kind}, not h264`);
  await L.until('the H.264 pattern runs and its codec is known', 10000, async () => {
    const s = await streamOf(st.name);
    return s.codec && /^avc1\.[0-9a-f]{6}$/i.test(s.codec) && (await statsOf(st.name)).fps_in >= 25;
  });
  const codec = (await streamOf(st.name)).codec;

  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);
  const page = await chr.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(S + '/');

  /* Plays in mode h264. */
  await L.until('the viewer plays H.264', 15000, async () => {
    const v = await viewerState(page);
    return v.mode === 'h264' && v.state === 'playing' && v.frames >= 3 && v.frameNo >= 0;
  });
  const v0 = await viewerState(page);
  L.out(`playing: ${JSON.stringify(v0)}`);
  L.check(v0.codec === codec, `the page decodes ${v0.codec}, the server says ${codec}`);
  L.check(v0.keyframes >= 1, 'no keyframe received');

  /* Reads: the code on the canvas is the frame drawn, and close to live. */
  const reads = [];
  for (let i = 0; i < READS; i++) {
    const r = await canvasRead(page);
    r.seq = (await statsOf(st.name)).seq;
    r.behind = r.seq - r.code;
    reads.push(r);
    await L.sleep(100);
  }
  L.out(`reads (code / lastSeq / newest published): ${reads.map((r) => `${r.code}/${r.lastSeq}/${r.seq}`).join(' ')}`);
  L.check(reads.every((r) => r.code >= 0), 'the canvas shows no readable block code');
  L.check(reads.every((r) => r.code === r.lastSeq),
    'the block code on the canvas is not the number of the access unit drawn (sluiceViewer.lastSeq)');
  L.check(reads.every((r) => r.behind >= 0), 'the canvas shows a frame newer than the newest published');
  const behind = median(reads.map((r) => r.behind));
  L.out(`frames behind live: median ${behind}, max ${Math.max(...reads.map((r) => r.behind))} (bound ${MAX_BEHIND} for the median)`);
  L.check(behind <= MAX_BEHIND, `the picture is ${behind} frames behind live (median of ${READS})`);

  /* Advances at about the stream's rate, decodes, no errors. */
  const c0 = (await canvasRead(page)).code, s0 = (await statsOf(st.name)).seq, d0 = (await viewerState(page)).decoded;
  const t0 = Date.now();
  await L.sleep(SPAN_MS);
  const c1 = (await canvasRead(page)).code, s1 = (await statsOf(st.name)).seq;
  const v1 = await viewerState(page);
  const dt = Date.now() - t0;
  L.out(`over ${dt} ms: code ${c0} -> ${c1}, published ${s0} -> ${s1}, decoded ${d0} -> ${v1.decoded}, ` +
    `${v1.fps.toFixed(1)} fps drawn, latency ${v1.latencyMs} ms (mean ${Math.round(v1.latencyAvgMs)} ms; ` +
    `page clock minus server publish time, one machine)`);
  L.check(c1 > c0 && c1 - c0 >= 0.5 * (s1 - s0), `${c1 - c0} frames shown while ${s1 - s0} were published`);
  L.check(v1.decoded - d0 >= 0.5 * (s1 - s0), `${v1.decoded - d0} frames decoded while ${s1 - s0} were published`);
  L.check(v1.errors === 0 && v1.resyncs === 0, `decoder errors ${v1.errors}, resets ${v1.resyncs} (${v1.lastError})`);
  L.check(v1.breaks === 0, `${v1.breaks} delta frames arrived without their reference`);
  L.check(v1.skipped === 0, `${v1.skipped} frames were dropped waiting for a keyframe`);
  L.check(v1.width === st.width && v1.height === st.height, `drawn ${v1.width}x${v1.height}`);
  L.check(typeof v1.latencyMs === 'number' && v1.latencyMs >= -5, `latency ${v1.latencyMs} ms: the clocks disagree?`);
  const ui = await page.evaluate(() => ['codec', 'latency', 'errors', 'frameno', 'decoded']
    .map((id) => document.getElementById(id).textContent));
  L.out(`info panel: codec ${ui[0]}, latency ${ui[1]}, errors ${ui[2]}, frame # ${ui[3]}, decoded ${ui[4]}`);
  L.check(ui[0] === codec && /^\d+ ms$/.test(ui[1]) && ui[2] === '0' && /^\d+$/.test(ui[3]), 'the info panel is wrong');
  const vs = (await statsOf(st.name)).viewers_list.filter((v) => v.transport === 'ws');
  L.check(vs.length === 1, `the H.264 stream has ${vs.length} WebSocket viewers`);
  L.out(`server viewer: ${JSON.stringify(vs[0])}`);

  /* The dashboard. */
  const dash = await chr.context.newPage();
  await dash.goto(S + '/dashboard');
  const card = await L.until('the dashboard shows the H.264 stream card', 10000, () => dash.evaluate((name) => {
    const c = document.querySelector(`article[data-stream="${name}"]`);
    if (!c) return null;
    const t = (k) => c.querySelector('.kv.' + k + ' b').textContent;
    const r = { kind: c.dataset.kind, k: t('kind'), codec: t('codec'), bitrate: t('bitrate'), gop: t('gop'), held: t('gop-held') };
    return /frames$/.test(r.gop) && /bit\/s$/.test(r.bitrate) ? r : null;
  }, st.name));
  L.out(`dashboard card: ${JSON.stringify(card)}`);
  L.check(card.kind === 'h264' && card.k === 'H.264' && card.codec === codec, 'the dashboard card is wrong');
  L.check(/^[1-9]\d* frames$/.test(card.gop) && /\d (B|KiB|MiB)$/.test(card.held), 'the dashboard shows no GOP');
  await dash.close();

  await page.close();
  await L.until('the H.264 viewer left', 5000, async () => (await wsViewers(S, st.name)) === 0);

  /* The stream picker, on the mixed server: MJPEG -> H.264 -> MJPEG. */
  if (M) {
    const ml = (await L.getJSON(M + '/api/streams')).streams;
    L.out(`mixed server streams: ${ml.map((s) => `${s.name} ${s.kind}`).join(', ')}`);
    const jpeg = ml.find((s) => s.kind === 'mjpeg'), avc = ml.find((s) => s.kind === 'h264');
    L.check(jpeg && avc, 'the mixed server lacks an MJPEG or an H.264 stream');
    await L.until('the mixed server\'s H.264 stream has its codec', 10000, async () =>
      (await L.getJSON(M + '/api/streams')).streams.find((s) => s.name === avc.name).codec);
    const mp = await chr.context.newPage();
    mp.on('pageerror', (e) => errors.push(e.message));
    await mp.goto(M + '/?stream=' + encodeURIComponent(avc.name));
    const playsOn = (mode, name) => L.until(`the page plays ${name} in mode ${mode}`, 15000, async () => {
      const v = await viewerState(mp);
      return v.mode === mode && v.stream === name && v.state === 'playing' && v.frames >= 3 ? v : null;
    });
    const advances = async (what) => {
      const x0 = await canvasRead(mp);
      await L.sleep(1000);
      const x1 = await canvasRead(mp), vh = await viewerState(mp);
      L.out(`${what}: canvas code ${x0.code} -> ${x1.code} in 1 s, decoded ${vh.decoded}, errors ${vh.errors}, breaks ${vh.breaks}`);
      L.check(x1.code > x0.code, `${what}: the H.264 picture does not advance`);
      L.check(vh.errors === 0 && vh.breaks === 0, `${what}: decoder errors ${vh.errors}, breaks ${vh.breaks}`);
      L.check(await mp.evaluate(() => !document.getElementById('mode-h264').hidden && document.getElementById('mode-ws').hidden),
        `${what}: the transport buttons do not show the H.264 mode`);
    };
    const mviewers = async (name) => (await L.stats(M)).streams.find((s) => s.name === name).viewers;
    await playsOn('h264', avc.name);
    await advances(`mixed server, ${avc.name}`);
    await mp.selectOption('#stream-select', jpeg.name);
    await playsOn('mjpeg', jpeg.name);
    await L.until('the H.264 viewer left', 5000, async () => (await mviewers(avc.name)) === 0);
    const jc = await mp.evaluate(() => window.readBlockCode(document.getElementById('stream')));
    L.out(`picker -> ${jpeg.name}: the <img> shows frame ${jc}`);
    L.check(jc >= 0, 'the MJPEG stream shows no block code');
    L.check(await mp.evaluate(() => document.getElementById('mode-h264').hidden && !document.getElementById('mode-ws').hidden),
      'the transport buttons do not show the MJPEG transports');
    await mp.selectOption('#stream-select', avc.name);
    await playsOn('h264', avc.name);
    await L.until('the MJPEG viewer left', 5000, async () => (await mviewers(jpeg.name)) === 0);
    await advances(`picker -> ${avc.name}`);
    await mp.close();
  }

  /* A broken keyframe: one error, then the next keyframe restarts it. */
  const bad = await chr.context.newPage();
  bad.on('pageerror', (e) => errors.push(e.message));
  await bad.addInitScript(() => {
    const Native = window.WebSocket;
    let keys = 0;
    window.sluiceBroken = -1;
    window.WebSocket = class extends Native {
      set onmessage(fn) {
        super.onmessage = (e) => {
          let d = e.data;
          if (d instanceof ArrayBuffer && d.byteLength > 16 && (new Uint8Array(d)[1] & 1) && ++keys === 2) {
            const x = new Uint8Array(d.byteLength);
            x.set(new Uint8Array(d, 0, 16));
            x.set([0, 0, 0, 1, 0x41], 16); /* a non-IDR slice of noise, flagged key */
            for (let i = 21; i < x.length; i++) x[i] = (i * 151) & 0xff;
            window.sluiceBroken = new DataView(d).getUint32(4);
            d = x.buffer;
          }
          fn.call(this, { data: d });
        };
      }
      get onmessage() { return super.onmessage; }
    };
  });
  await bad.goto(S + '/');
  await L.until('the broken keyframe was delivered', 10000, () => bad.evaluate(() => window.sluiceBroken >= 0));
  const vb = await L.until('the page counts the error and plays on from the next keyframe', 10000, async () => {
    const v = await viewerState(bad);
    return v.errors >= 1 && v.state === 'playing' && v.lastSeq > 0 && v.keyframes >= 3 ? v : null;
  });
  const rb = await fresh(bad);
  const broken = await bad.evaluate(() => window.sluiceBroken);
  L.out(`broken keyframe ${broken}: errors ${vb.errors} (${vb.lastError}), resets ${vb.resyncs}, ` +
    `dropped waiting for a keyframe ${vb.skipped}; then frame ${rb.code}, ${rb.seq - rb.code} behind live`);
  L.check(vb.errors === 1 && vb.resyncs === 1, `errors ${vb.errors}, resets ${vb.resyncs} for one broken keyframe`);
  L.check(vb.skipped > 0, 'the frames after the broken keyframe were fed to the decoder');
  await bad.close();

  /* No WebCodecs and no MSE: a clear message, and no socket. */
  const bare = await chr.context.newPage();
  await bare.addInitScript(() => {
    delete window.VideoDecoder; delete window.EncodedVideoChunk; delete window.MediaSource; delete window.ManagedMediaSource;
  });
  await bare.goto(S + '/');
  const msg = await L.until('the page without WebCodecs says so', 10000, () => bare.evaluate(() =>
    window.sluiceViewer.state === 'unsupported' ? document.getElementById('msg').textContent : null));
  L.out(`without WebCodecs: "${msg}"`);
  L.check(/cannot decode H\.264 with WebCodecs/.test(msg), 'the message does not say what is missing');
  await L.sleep(1000);
  L.check((await wsViewers(S, st.name)) === 0, 'the page without WebCodecs holds a viewer');
  L.check(errors.length === 0, `page errors: ${errors.join('; ')}`);
});

// The viewer page plays the H.264 test pattern (sluice-stream --codec h264)
// in a real Chromium through Media Source Extensions (fMP4 over the
// WebSocket, /ws?format=fmp4):
//   - opened with ?mode=mse it plays in mode 'mse': video.currentTime
//     advances, the frames the <video> presented rise at about the stream's
//     rate, no media error, no delta fragment without its reference;
//   - the block code read from the <video> (drawn into a canvas by the
//     page's own readBlockCode) is within MAX_BEHIND frames of the newest
//     frame the server published (its seq, fetched right after the read) in
//     the median of READS reads, and is the frame number the page maps the
//     presented media time to (sluiceViewer.lastSeq, within a frame or two:
//     the video may present the next frame between the callback and the
//     read);
//   - what was played is removed: after TRIM_AFTER_S seconds the buffered
//     range spans at most TRIM_SPAN_S seconds;
//   - the WebCodecs and MSE buttons switch the player both ways;
//   - with WebCodecs removed (VideoDecoder deleted before the page runs),
//     the page opened without a mode plays MSE by itself and says why;
//     with MediaSource removed too it says it cannot play and opens nothing.
'use strict';

const L = require('./lib');

const a = L.args();
const S = a.server;
const READS = 15;
/* Frames. The player keeps about 0.1 s buffered, plays slightly fast above
 * 0.2 s and jumps to the end above 1 s (30 frames): a read further behind
 * than that is a player that does not keep up. The median must be well
 * inside it; the bound is the jump threshold so that one catch-up in
 * progress cannot fail the test. */
const MAX_BEHIND = 30;
const TRIM_AFTER_S = 10;
/* Seconds: a GOP (2 s by default) + the 1 s kept behind the playhead + the
 * 1 s between trims + the 0.1 s ahead, rounded up. */
const TRIM_SPAN_S = 5;

const viewerState = (page) => page.evaluate(() => {
  const v = window.sluiceViewer, o = {};
  for (const k of Object.keys(v)) if (typeof v[k] !== 'function') o[k] = v[k];
  return o;
});
const videoRead = (page) => page.evaluate(() => {
  const v = document.getElementById('video');
  return { code: window.readBlockCode(v), lastSeq: window.sluiceViewer.lastSeq, t: v.currentTime };
});
const stream = async () => (await L.stats(S)).streams[0];
const viewersOf = async (transport) => ((await stream()).viewers_list || []).filter((v) => v.transport === transport).length;
const median = (xs) => { const v = [...xs].sort((x, y) => x - y); return v[Math.floor(v.length / 2)]; };

async function plays(page, mode, what) {
  return L.until(`${what}: the page plays in mode ${mode}`, 15000, async () => {
    const v = await viewerState(page);
    return v.mode === mode && v.state === 'playing' && v.frames >= 5 ? v : null;
  });
}

L.main('mse_viewer', 110000, async () => {
  const st = (await L.getJSON(S + '/api/streams')).streams[0];
  L.check(st.kind === 'h264', `the default stream is ${st.kind}, not h264`);
  await L.until('the H.264 pattern runs', 10000, async () => (await stream()).fps_in >= 25 && (await L.getJSON(S + '/api/streams')).streams[0].codec);
  const codec = (await L.getJSON(S + '/api/streams')).streams[0].codec;
  const chr = await L.startChromium();
  L.out(`chromium ${chr.version}`);
  const errors = [];

  /* ---- ?mode=mse plays, close to live ---- */
  const page = await chr.context.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(S + '/?mode=mse');
  const v0 = await plays(page, 'mse', 'mode=mse');
  L.out(`playing: source ${v0.source}, codec ${v0.codec}, configs ${v0.configs}, seeks ${v0.seeks}, presented ${v0.presented}`);
  L.check(v0.codec === codec, `the page plays ${v0.codec}, the server says ${codec}`);
  L.check(v0.configs === 1 && v0.source === 'MediaSource', `configs ${v0.configs}, source ${v0.source}`);
  L.check(await L.until('one ws-fmp4 viewer on the server', 5000, async () => (await viewersOf('ws-fmp4')) === 1), 'no fMP4 viewer');
  L.check(await page.evaluate(() => document.getElementById('video').disableRemotePlayback === false ||
    !window.ManagedMediaSource), 'disableRemotePlayback set without ManagedMediaSource');

  const reads = [];
  for (let i = 0; i < READS; i++) {
    const r = await videoRead(page);
    r.seq = (await stream()).seq;
    r.behind = r.seq - r.code;
    reads.push(r);
    await L.sleep(100);
  }
  L.out(`reads (video code / mapped lastSeq / newest published): ${reads.map((r) => `${r.code}/${r.lastSeq}/${r.seq}`).join(' ')}`);
  L.check(reads.every((r) => r.code >= 0), 'the <video> shows no readable block code');
  L.check(reads.every((r) => r.behind >= 0), 'the video shows a frame newer than the newest published');
  const behind = median(reads.map((r) => r.behind));
  const mapOff = median(reads.map((r) => Math.abs(r.code - r.lastSeq)));
  L.out(`frames behind live: median ${behind}, max ${Math.max(...reads.map((r) => r.behind))} (bound ${MAX_BEHIND} for the median); ` +
    `|code - mapped frame number|: median ${mapOff}, max ${Math.max(...reads.map((r) => Math.abs(r.code - r.lastSeq)))}`);
  L.check(behind <= MAX_BEHIND, `the picture is ${behind} frames behind live (median of ${READS})`);
  L.check(mapOff <= 2, `the media time -> frame number table is off by ${mapOff} frames (median)`);

  const s0 = (await stream()).seq, x0 = await viewerState(page), t0 = Date.now();
  await L.sleep(Math.max(0, TRIM_AFTER_S * 1000 - (Date.now() - t0)));
  const s1 = (await stream()).seq, x1 = await viewerState(page), dt = (Date.now() - t0) / 1000;
  const span = x1.buffered.length ? x1.buffered[x1.buffered.length - 1][1] - x1.buffered[0][0] : 0;
  L.out(`over ${dt.toFixed(1)} s: currentTime ${x0.currentTime.toFixed(2)} -> ${x1.currentTime.toFixed(2)}, presented ` +
    `${x0.presented} -> ${x1.presented} while ${s1 - s0} were published, ${x1.fps.toFixed(1)} fps; latency ${x1.latencyMs} ms ` +
    `(mean ${Math.round(x1.latencyAvgMs)} ms); ahead ${x1.ahead.toFixed(2)} s; seeks ${x1.seeks}, faster than 1x for ${Math.round(x1.rateMs)} ms; ` +
    `buffered ${JSON.stringify(x1.buffered)} (span ${span.toFixed(2)} s, bound ${TRIM_SPAN_S}), trimmed ${x1.trimmed.toFixed(1)} s; ` +
    `errors ${x1.errors}, breaks ${x1.breaks}, dropped ${x1.dropped}, skipped ${x1.skipped}`);
  L.check(x1.currentTime - x0.currentTime >= 0.5 * dt, 'video.currentTime does not advance');
  L.check(x1.presented - x0.presented >= 0.5 * (s1 - s0), `${x1.presented - x0.presented} frames presented while ${s1 - s0} were published`);
  L.check(x1.errors === 0 && x1.breaks === 0, `errors ${x1.errors} (${x1.lastError}), breaks ${x1.breaks}`);
  L.check(typeof x1.latencyMs === 'number' && x1.latencyMs >= -5, `latency ${x1.latencyMs} ms`);
  L.check(x1.trimmed > 0 && span <= TRIM_SPAN_S, `the SourceBuffer holds ${span.toFixed(2)} s (trimmed ${x1.trimmed} s)`);
  L.check(x1.width === st.width && x1.height === st.height, `presented ${x1.width}x${x1.height}`);
  const ui = await page.evaluate(() => ['latency', 'buffer', 'mode-mse', 'mode-h264']
    .map((id) => (id.startsWith('mode') ? document.getElementById(id).getAttribute('aria-pressed') : document.getElementById(id).textContent)));
  L.out(`info panel: latency ${ui[0]}, buffer ${ui[1]}; buttons MSE ${ui[2]}, WebCodecs ${ui[3]}`);
  L.check(/^\d+ ms$/.test(ui[0]) && /^\d+\.\d\d s/.test(ui[1]) && ui[2] === 'true' && ui[3] === 'false', 'the info panel or the buttons are wrong');

  /* ---- the buttons switch WebCodecs <-> MSE ---- */
  await page.click('#mode-h264');
  await plays(page, 'h264', 'WebCodecs button');
  await L.until('the fMP4 viewer left and a WebCodecs one came', 5000, async () =>
    (await viewersOf('ws-fmp4')) === 0 && (await viewersOf('ws')) === 1);
  L.check((await page.evaluate(() => location.search)).includes('mode=h264'), 'the choice is not kept in the URL');
  await page.click('#mode-mse');
  await plays(page, 'mse', 'MSE button');
  await L.until('back to one fMP4 viewer', 5000, async () => (await viewersOf('ws-fmp4')) === 1 && (await viewersOf('ws')) === 0);
  const vb = await viewerState(page);
  L.out(`buttons: WebCodecs and back to MSE, playing (presented ${vb.presented}, errors ${vb.errors})`);
  await page.close();
  await L.until('the page left', 5000, async () => (await viewersOf('ws-fmp4')) === 0);

  /* ---- no WebCodecs: MSE by itself ---- */
  const bare = await chr.context.newPage();
  bare.on('pageerror', (e) => errors.push(e.message));
  await bare.addInitScript(() => { delete window.VideoDecoder; delete window.EncodedVideoChunk; });
  await bare.goto(S + '/');
  const vn = await plays(bare, 'mse', 'without WebCodecs');
  const rn = await L.until(`without WebCodecs: a picture within ${MAX_BEHIND} frames of live`, 10000, async () => {
    const r = await videoRead(bare);
    r.seq = (await stream()).seq;
    return r.code >= 0 && r.seq - r.code <= MAX_BEHIND ? r : null;
  }, 100);
  L.out(`without WebCodecs: mode ${vn.mode} (fallback: "${vn.fallback}"), frame ${rn.code}, ${rn.seq - rn.code} behind live`);
  L.check(/VideoDecoder/.test(vn.fallback || ''), 'the page does not say why it plays MSE');
  await bare.close();

  /* ---- neither: a clear message, no socket ---- */
  const none = await chr.context.newPage();
  await none.addInitScript(() => { delete window.VideoDecoder; delete window.MediaSource; delete window.ManagedMediaSource; });
  await none.goto(S + '/');
  const msg = await L.until('the page without WebCodecs and MSE says so', 10000, () => none.evaluate(() =>
    window.sluiceViewer.state === 'unsupported' ? document.getElementById('msg').textContent : null));
  L.out(`without WebCodecs and MSE: "${msg}"`);
  L.check(/WebCodecs/.test(msg) && /Media Source Extensions/.test(msg), 'the message does not say what is missing');
  await L.sleep(1000);
  L.check((await stream()).viewers === 0, 'the page that cannot play holds a viewer');
  L.check(errors.length === 0, `page errors: ${errors.join('; ')}`);
});

/* sluice block-code reader: the frame number that the sluice-stream test
 * pattern draws in its top band (geometry in apps/sluice-stream/pattern.h).
 *
 *   readBlockCode(source) -> 0..4294967295, or -1 when no code is readable.
 *   sluiceScanFrame(source) -> {code, hash, width, height}, or null when the
 *       source cannot be read: the same code plus a cheap fingerprint of the
 *       pixels read (the viewer tells a new MJPEG frame from the last by it).
 *
 * source: an HTMLImageElement, HTMLCanvasElement, ImageBitmap, OffscreenCanvas
 * or HTMLVideoElement, taken at its natural size W x H. Every division is an
 * integer floor division, exactly as the C reader (ss_pattern_read_code):
 *   cell k (0..33): cx = (2k+1)W/68, cy = H/20, rx = W/136, ry = H/60;
 *   sample(k) = mean luma (77R+150G+29B)>>8 over x in [cx-rx, cx+rx],
 *               y in [cy-ry, cy+ry] (inclusive, clipped to the picture);
 *   white = sample(0), black = sample(33); white - black < 64: no code;
 *   threshold = (white+black)/2; a data cell within (white-black)/4 of it is
 *   ambiguous: no code; else cells 1..32 are bits 31..0 (white = 1).
 * Only the rows the windows cover are drawn, 1:1, which reads the same
 * pixels as drawing the whole picture at its natural size. */
(function () {
  'use strict';
  const CELLS = 34;
  let cv = null, g = null;

  function naturalSize(s) {
    if (typeof HTMLImageElement !== 'undefined' && s instanceof HTMLImageElement)
      return [s.naturalWidth, s.naturalHeight];
    if (typeof HTMLVideoElement !== 'undefined' && s instanceof HTMLVideoElement)
      return [s.videoWidth, s.videoHeight];
    return [s.width | 0, s.height | 0];
  }

  function scan(source) {
    if (!source) return null;
    const [W, H] = naturalSize(source);
    if (!(W > 0 && H > 0)) return null;
    const cy = Math.floor(H / 20), ry = Math.floor(H / 60);
    const y0 = Math.max(0, cy - ry), y1 = Math.min(H - 1, cy + ry), rows = y1 - y0 + 1;
    if (!cv) {
      cv = document.createElement('canvas');
      g = cv.getContext('2d', { willReadFrequently: true });
    }
    if (cv.width !== W || cv.height !== rows) { cv.width = W; cv.height = rows; }
    else g.clearRect(0, 0, W, rows);
    let px;
    try {
      g.drawImage(source, 0, y0, W, rows, 0, 0, W, rows);
      px = g.getImageData(0, 0, W, rows).data;
    } catch (e) {
      return null; /* not decoded yet, or a cross-origin (tainted) picture */
    }
    let hash = 2166136261;
    for (let i = 0; i < px.length; i += 28) hash = Math.imul(hash ^ px[i] ^ (px[i + 1] << 8), 16777619);
    return { code: decode(px, W, H, y0, rows), hash: hash >>> 0, width: W, height: H };
  }

  function decode(px, W, H, top, rows) {
    if (W < CELLS || H < 12) return -1;
    const cy = Math.floor(H / 20), rx = Math.floor(W / (4 * CELLS)), ry = Math.floor(H / 60);
    function sample(k) {
      const cx = Math.floor((2 * k + 1) * W / (2 * CELLS));
      const x0 = Math.max(0, cx - rx), x1 = Math.min(W - 1, cx + rx);
      const y0 = Math.max(0, cy - ry), y1 = Math.min(H - 1, cy + ry, top + rows - 1);
      let sum = 0, n = 0;
      for (let y = y0; y <= y1; y++) {
        let i = ((y - top) * W + x0) * 4;
        for (let x = x0; x <= x1; x++, i += 4) {
          sum += (77 * px[i] + 150 * px[i + 1] + 29 * px[i + 2]) >> 8;
          n++;
        }
      }
      return n ? sum / n : 0;
    }
    const white = sample(0), black = sample(CELLS - 1), contrast = white - black;
    if (contrast < 64) return -1;
    const thr = (white + black) / 2, margin = contrast / 4;
    let value = 0;
    for (let k = 1; k <= 32; k++) {
      const v = sample(k);
      if (Math.abs(v - thr) < margin) return -1;
      if (v > thr) value += Math.pow(2, 32 - k);
    }
    return value;
  }

  function readBlockCode(source) {
    const r = scan(source);
    return r ? r.code : -1;
  }

  window.readBlockCode = readBlockCode;
  window.sluiceScanFrame = scan;
})();

/*
 * Test-pattern source for sluice-stream: renders a numbered, time-stamped
 * frame straight into a reused YUV 4:2:0 buffer and encodes it as a baseline
 * JPEG with libjpeg-turbo (or hands the raw planes to a video encoder), and
 * reads the frame number back from a picture.
 *
 * The picture, top to bottom:
 *   - a grey band holding a MACHINE-READABLE BLOCK CODE of the frame number;
 *   - a hue gradient that slides sideways with the frame number, a white bar
 *     that sweeps across every 120 frames (so motion and stalls are visible);
 *   - a black box with three text lines in a built-in 5x7 font:
 *     "FRAME <seq>", "HH:MM:SS.mmm UTC" (the publish time) and "<W>X<H> Q<q>".
 *
 * BLOCK CODE GEOMETRY (all divisions are integer floor divisions; W and H
 * are the width and height of the picture being read, so the code survives
 * any rescaling that keeps the picture whole, with or without aspect ratio):
 *
 *   band        y in [0, H/10), x in [0, W): luma 128, no colour.
 *   cells       34 cells side by side, cell k (0..33) covers
 *               x in [k*W/34, (k+1)*W/34), y in [H/60, H/12).
 *   cell 0      START marker: always white (luma 255).
 *   cells 1..32 data bit 31 - (k-1): the frame number's low 32 bits, most
 *               significant bit first; white (255) = 1, black (0) = 0.
 *   cell 33     STOP marker: always black (luma 0).
 *
 * READING (what ss_pattern_read_code does; a JavaScript canvas reader should
 * do exactly the same):
 *   luma(px)    gray value, or (77*R + 150*G + 29*B) >> 8 for RGB(A).
 *   sample(k)   mean luma over the window x in [cx - rx, cx + rx],
 *               y in [cy - ry, cy + ry] (inclusive), where
 *               cx = (2*k + 1)*W/68, cy = H/20, rx = W/136, ry = H/60.
 *   white = sample(0), black = sample(33), contrast = white - black.
 *   contrast < 64                      -> no code (return -1).
 *   threshold = (white + black) / 2    (real numbers, no rounding)
 *   bit = sample(k) > threshold, for k = 1..32; but if any data cell has
 *   |sample(k) - threshold| < contrast / 4 the cell is ambiguous -> -1.
 *   value = sum of bit(k) << (32 - k).
 * The white/black markers give the threshold, so a reader also works on
 * pictures whose levels were squeezed (limited-range re-encoding, dimming).
 *
 * Sizes: at 160x120 each cell is 4-5 px wide and 8 px tall and still reads
 * back at JPEG quality 30; from 320x240 up each cell is at least 9x16 px.
 *
 * Threads: a pattern is used by one thread at a time; different patterns and
 * the two readers may be used from any number of threads at once.
 */
#ifndef SS_PATTERN_H
#define SS_PATTERN_H

#include <stddef.h>

typedef struct ss_pattern ss_pattern;

/* Create a generator. `width` and `height` are rounded up to multiples of 16
 * (16..8192); `quality` is the JPEG quality, 1..100. Returns NULL on a bad
 * argument or when out of memory, with a message copied into `err` (errlen
 * bytes, may be NULL/0).
 * Example:
 *   char err[128];
 *   ss_pattern *p = ss_pattern_new(1280, 720, 80, err, sizeof err);
 */
ss_pattern *ss_pattern_new(int width, int height, int quality, char *err,
                           size_t errlen);

/* Free a generator and its buffers; NULL is a no-op. */
void ss_pattern_free(ss_pattern *p);

/* The picture size after rounding. */
int ss_pattern_width(const ss_pattern *p);
int ss_pattern_height(const ss_pattern *p);

/* Render frame `seq` stamped with the publish time `unix_ms` (milliseconds
 * since the Unix epoch, shown as UTC time of day) and encode it as a 4:2:0
 * baseline JPEG. Returns 0 and sets *jpeg / *len to a buffer owned by the
 * pattern, valid until the next render or free (copy it out). Returns -1 if
 * the encoder fails; *jpeg and *len are then untouched.
 * Example:
 *   const unsigned char *j; size_t n;
 *   if (ss_pattern_render(p, seq, now_ms, &j, &n) == 0) publish_copy(j, n);
 */
int ss_pattern_render(ss_pattern *p, unsigned long long seq,
                      unsigned long long unix_ms, const unsigned char **jpeg,
                      size_t *len);

/* Render frame `seq` exactly as ss_pattern_render draws it, but skip the
 * JPEG encoder: for a video encoder that takes raw I420 (e.g. h264enc.h).
 * Sets planes[0..2] to the Y, U and V planes and strides[0..2] to their row
 * strides in bytes; the planes are ss_pattern_width() x ss_pattern_height()
 * luma and half that in each direction for chroma, full-range BT.601
 * (JFIF) levels. The planes are owned by the pattern and valid until the
 * next render or free; a later render overwrites them in place. Returns 0,
 * or -1 on a NULL argument (nothing is written then).
 * Example:
 *   const unsigned char *pl[3]; int st[3];
 *   ss_pattern_render_yuv(p, seq, now_ms, pl, st);
 *   ss_h264enc_encode(enc, pl, st, 0, &au, &n, &key);
 */
int ss_pattern_render_yuv(ss_pattern *p, unsigned long long seq,
                          unsigned long long unix_ms,
                          const unsigned char *planes[3], int strides[3]);

/* Read the block code from a decoded picture (borrowed for the call).
 * `pixel_stride` is 1 (gray), 3 (RGB) or 4 (RGBA); `row_stride` is the
 * number of bytes from one row to the next (>= width * pixel_stride).
 * Returns the 32-bit frame number (seq & 0xFFFFFFFF), or -1 when the picture
 * is too small (under 34x12), the arguments are bad, or no clean code is
 * found (see READING above). */
long long ss_pattern_read_code(const unsigned char *gray_or_rgb, int width,
                               int height, int pixel_stride, int row_stride);

/* Decode a JPEG (borrowed for the call) to gray and read its block code.
 * Large pictures are shrunk inside the decoder (DCT scaling, much cheaper
 * than a full decode) by the strongest factor that keeps them at least
 * 320x180. Returns the frame number, or -1 if the JPEG does not decode, is
 * larger than 16384x16384, or carries no code. */
long long ss_pattern_read_jpeg(const unsigned char *jpeg, size_t len);

#endif

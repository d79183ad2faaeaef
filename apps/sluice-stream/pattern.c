/*
 * Test-pattern generator and block-code reader; the picture and the exact
 * code geometry are documented in pattern.h.
 *
 * Budget: a frame is rendered straight into one reused Y/U/V 4:2:0 buffer
 * (most rows are a memcpy of a precomputed row) and handed to
 * tjCompressFromYUVPlanes, so libjpeg-turbo skips its colour conversion and
 * downsampling; the output buffer is allocated once with tjBufSize() and
 * reused with TJFLAG_NOREALLOC. Measured on one Xeon core at 1280x720,
 * quality 80: drawing 0.07 ms, render + encode 1.5 ms per frame, i.e. under
 * 5% of a core at 30 fps (640x480: 0.5 ms).
 *
 * Allocation uses plain malloc: this is application code outside the library,
 * and its buffers live as long as the stream.
 */
#include "pattern.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

enum {
  CELLS = 34,         /* start marker + 32 data bits + stop marker */
  BAR_PERIOD = 120,   /* frames for one sweep of the bar */
  HUE_STEPS = 1536,   /* 6 sectors of 256: integer HSV */
  HUE_PER_FRAME = 8,  /* gradient drift: one full turn every 192 frames */
  MIN_SIDE = 16,
  MAX_SIDE = 8192,
  MAX_READ_SIDE = 16384,
  GLYPH_W = 5,
  GLYPH_H = 7,
  TEXT_LINES = 3,
  LUMA_BAND = 128,
  LUMA_WHITE = 255,
  LUMA_BLACK = 0,
  CHROMA_NEUTRAL = 128,
};

struct ss_pattern {
  int w, h, quality;
  int cw, ch;                /* chroma plane size: w/2 x h/2 */
  unsigned char *yuv;        /* Y, then U, then V: one allocation */
  unsigned char *planes[3];
  int strides[3];
  unsigned char *row;        /* per-frame background rows: Y (w), U, V (cw) */
  tjhandle tj;
  unsigned char *jpeg;       /* tjAlloc'd, tjBufSize() bytes, never grown */
  unsigned long jpeg_cap;
  int scale;                 /* font pixels per glyph pixel */
  char info[40];             /* third text line: "640X480 Q80" */
};

/* A 5x7 font with only the characters the overlay prints; bit 4 of each row
 * is the leftmost pixel. Unknown characters draw as blanks. */
static const struct glyph {
  char c;
  unsigned char rows[GLYPH_H];
} font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int round16(int v) { return (v + 15) & ~15; }

ss_pattern *ss_pattern_new(int width, int height, int quality, char *err,
                           size_t errlen) {
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
    set_err(err, errlen, "pattern size %dx%d out of range 16..%d", width,
            height, MAX_SIDE);
    return NULL;
  }
  if (quality < 1 || quality > 100) {
    set_err(err, errlen, "JPEG quality %d out of range 1..100", quality);
    return NULL;
  }
  ss_pattern *p = calloc(1, sizeof(*p));
  if (p == NULL) goto oom;
  p->w = round16(width);
  p->h = round16(height);
  p->quality = quality;
  p->cw = p->w / 2;
  p->ch = p->h / 2;
  size_t ysize = (size_t)p->w * (size_t)p->h;
  size_t csize = (size_t)p->cw * (size_t)p->ch;
  p->yuv = malloc(ysize + 2 * csize);
  p->row = malloc((size_t)p->w + 2 * (size_t)p->cw);
  if (p->yuv == NULL || p->row == NULL) goto oom;
  p->planes[0] = p->yuv;
  p->planes[1] = p->yuv + ysize;
  p->planes[2] = p->yuv + ysize + csize;
  p->strides[0] = p->w;
  p->strides[1] = p->strides[2] = p->cw;

  p->tj = tjInitCompress();
  if (p->tj == NULL) {
    set_err(err, errlen, "tjInitCompress: %s", tjGetErrorStr2(NULL));
    goto fail;
  }
  p->jpeg_cap = tjBufSize(p->w, p->h, TJSAMP_420);
  if (p->jpeg_cap == (unsigned long)-1) {
    set_err(err, errlen, "tjBufSize failed for %dx%d", p->w, p->h);
    goto fail;
  }
  p->jpeg = tjAlloc((int)p->jpeg_cap);
  if (p->jpeg == NULL) goto oom;

  /* Text scale: 1 at 160x120, 4 at 640x480, 6 at 1280x720. */
  p->scale = p->w / 160 < p->h / 120 ? p->w / 160 : p->h / 120;
  if (p->scale < 1) p->scale = 1;
  snprintf(p->info, sizeof(p->info), "%dX%d Q%d", p->w, p->h, quality);
  return p;

oom:
  set_err(err, errlen, "out of memory for a %dx%d pattern", width, height);
fail:
  ss_pattern_free(p);
  return NULL;
}

void ss_pattern_free(ss_pattern *p) {
  if (p == NULL) return;
  if (p->tj) tjDestroy(p->tj);
  if (p->jpeg) tjFree(p->jpeg);
  free(p->row);
  free(p->yuv);
  free(p);
}

int ss_pattern_width(const ss_pattern *p) { return p->w; }
int ss_pattern_height(const ss_pattern *p) { return p->h; }

/* Fill luma rectangle [x0,x1) x [y0,y1), clipped to the picture. */
static void fill_y(ss_pattern *p, int x0, int y0, int x1, int y1, int v) {
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > p->w) x1 = p->w;
  if (y1 > p->h) y1 = p->h;
  if (x0 >= x1) return;
  for (int y = y0; y < y1; y++)
    memset(p->planes[0] + (size_t)y * (size_t)p->w + (size_t)x0, v,
           (size_t)(x1 - x0));
}

/* Make the chroma under luma rectangle [x0,x1) x [y0,y1) neutral grey, so
 * white, black and grey areas carry no colour. A chroma sample covers 2x2
 * luma pixels; every sample that touches the rectangle is cleared. */
static void clear_uv(ss_pattern *p, int x0, int y0, int x1, int y1) {
  x0 = x0 < 0 ? 0 : x0 / 2;
  y0 = y0 < 0 ? 0 : y0 / 2;
  x1 = (x1 + 1) / 2;
  y1 = (y1 + 1) / 2;
  if (x1 > p->cw) x1 = p->cw;
  if (y1 > p->ch) y1 = p->ch;
  if (x0 >= x1) return;
  for (int y = y0; y < y1; y++) {
    size_t off = (size_t)y * (size_t)p->cw + (size_t)x0;
    memset(p->planes[1] + off, CHROMA_NEUTRAL, (size_t)(x1 - x0));
    memset(p->planes[2] + off, CHROMA_NEUTRAL, (size_t)(x1 - x0));
  }
}

static const unsigned char *glyph_rows(char c) {
  for (size_t i = 0; i < sizeof(font) / sizeof(font[0]); i++)
    if (font[i].c == c) return font[i].rows;
  return NULL;
}

static void draw_text(ss_pattern *p, int x, int y, const char *s) {
  int k = p->scale;
  for (; *s; s++, x += (GLYPH_W + 1) * k) {
    const unsigned char *rows = glyph_rows(*s);
    if (rows == NULL) continue;
    for (int r = 0; r < GLYPH_H; r++)
      for (int c = 0; c < GLYPH_W; c++)
        if (rows[r] & (0x10 >> c))
          fill_y(p, x + c * k, y + r * k, x + (c + 1) * k, y + (r + 1) * k,
                 LUMA_WHITE);
  }
}

static int clamp255(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

/* One background row for this frame: a hue wheel across the width, rotated
 * by the frame number. Integer HSV with fixed saturation and value; the
 * JFIF (full-range BT.601) matrix turns it into Y, Cb, Cr. The offsets in
 * the chroma sums keep them non-negative, so the shifts are well defined. */
static void make_rows(ss_pattern *p, unsigned long long seq) {
  enum { LO = 60, HI = 210 };
  unsigned char *yr = p->row, *ur = yr + p->w, *vr = ur + p->cw;
  int drift = (int)(seq % (HUE_STEPS / HUE_PER_FRAME)) * HUE_PER_FRAME;
  for (int x = 0; x < p->cw; x++) {
    int hue = (int)((long long)x * HUE_STEPS / p->cw + drift) % HUE_STEPS;
    int f = hue & 255, up = LO + (HI - LO) * f / 255, dn = HI + LO - up;
    int r, g, b;
    switch (hue >> 8) {
    case 0: r = HI, g = up, b = LO; break;
    case 1: r = dn, g = HI, b = LO; break;
    case 2: r = LO, g = HI, b = up; break;
    case 3: r = LO, g = dn, b = HI; break;
    case 4: r = up, g = LO, b = HI; break;
    default: r = HI, g = LO, b = dn; break;
    }
    int yv = (77 * r + 150 * g + 29 * b) >> 8;
    yr[2 * x] = yr[2 * x + 1] = (unsigned char)yv;
    ur[x] = (unsigned char)clamp255((-43 * r - 85 * g + 128 * b + 32896) >> 8);
    vr[x] = (unsigned char)clamp255((128 * r - 107 * g - 21 * b + 32896) >> 8);
  }
}

static void draw_code(ss_pattern *p, unsigned long long seq) {
  unsigned long code = (unsigned long)(seq & 0xFFFFFFFFull);
  int y0 = p->h / 60, y1 = p->h / 12;
  for (int k = 0; k < CELLS; k++) {
    int v;
    if (k == 0) v = LUMA_WHITE;
    else if (k == CELLS - 1) v = LUMA_BLACK;
    else v = (code >> (32 - k)) & 1 ? LUMA_WHITE : LUMA_BLACK;
    fill_y(p, k * p->w / CELLS, y0, (k + 1) * p->w / CELLS, y1, v);
  }
}

static void draw_overlay(ss_pattern *p, unsigned long long seq,
                         unsigned long long unix_ms) {
  char lines[TEXT_LINES][40];
  unsigned long long sod = unix_ms / 1000 % 86400;
  snprintf(lines[0], sizeof(lines[0]), "FRAME %llu", seq);
  snprintf(lines[1], sizeof(lines[1]), "%02u:%02u:%02u.%03u UTC",
           (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60),
           (unsigned)(sod % 60), (unsigned)(unix_ms % 1000));
  snprintf(lines[2], sizeof(lines[2]), "%s", p->info);

  int k = p->scale, advance = (GLYPH_W + 1) * k, line_h = (GLYPH_H + 2) * k;
  size_t longest = 0;
  for (int i = 0; i < TEXT_LINES; i++)
    if (strlen(lines[i]) > longest) longest = strlen(lines[i]);
  int pad = 2 * k, band = p->h / 10;
  int box_w = (int)longest * advance + 2 * pad - k;
  int box_h = TEXT_LINES * line_h + 2 * pad - 2 * k;
  int x0 = p->w / CELLS, y0 = band + (p->h - band - box_h) / 2;
  if (x0 + box_w > p->w) x0 = 0;
  if (y0 < band) y0 = band;
  fill_y(p, x0, y0, x0 + box_w, y0 + box_h, LUMA_BLACK);
  clear_uv(p, x0, y0, x0 + box_w, y0 + box_h);
  for (int i = 0; i < TEXT_LINES; i++)
    draw_text(p, x0 + pad, y0 + pad + i * line_h, lines[i]);
}

/* Draw frame `seq` into p->planes; shared by both render calls so the JPEG
 * and the raw planes always show the same picture. */
static void draw_frame(ss_pattern *p, unsigned long long seq,
                       unsigned long long unix_ms) {
  int band = p->h / 10, cband = (band + 1) / 2;
  make_rows(p, seq);
  const unsigned char *yr = p->row, *ur = yr + p->w, *vr = ur + p->cw;
  for (int y = band; y < p->h; y++)
    memcpy(p->planes[0] + (size_t)y * (size_t)p->w, yr, (size_t)p->w);
  for (int y = cband; y < p->ch; y++) {
    memcpy(p->planes[1] + (size_t)y * (size_t)p->cw, ur, (size_t)p->cw);
    memcpy(p->planes[2] + (size_t)y * (size_t)p->cw, vr, (size_t)p->cw);
  }
  fill_y(p, 0, 0, p->w, band, LUMA_BAND);
  clear_uv(p, 0, 0, p->w, band);
  draw_code(p, seq);

  int bar_w = (p->w / 48) & ~1;
  if (bar_w < 2) bar_w = 2;
  int bar_x = (int)(seq % BAR_PERIOD) * (p->w - bar_w) / (BAR_PERIOD - 1);
  fill_y(p, bar_x, band, bar_x + bar_w, p->h, LUMA_WHITE);
  clear_uv(p, bar_x, band, bar_x + bar_w, p->h);
  draw_overlay(p, seq, unix_ms);
}

int ss_pattern_render_yuv(ss_pattern *p, unsigned long long seq,
                          unsigned long long unix_ms,
                          const unsigned char *planes[3], int strides[3]) {
  if (p == NULL || planes == NULL || strides == NULL) return -1;
  draw_frame(p, seq, unix_ms);
  for (int i = 0; i < 3; i++) {
    planes[i] = p->planes[i];
    strides[i] = p->strides[i];
  }
  return 0;
}

int ss_pattern_render(ss_pattern *p, unsigned long long seq,
                      unsigned long long unix_ms, const unsigned char **jpeg,
                      size_t *len) {
  draw_frame(p, seq, unix_ms);

  /* NOREALLOC: the buffer is tjBufSize() bytes, the documented worst case,
   * so the encoder can fail but never reallocates behind our back. */
  unsigned long size = p->jpeg_cap;
  const unsigned char *planes[3] = {p->planes[0], p->planes[1], p->planes[2]};
  if (tjCompressFromYUVPlanes(p->tj, planes, p->w, p->strides, p->h,
                              TJSAMP_420, &p->jpeg, &size, p->quality,
                              TJFLAG_NOREALLOC) != 0)
    return -1;
  *jpeg = p->jpeg;
  *len = (size_t)size;
  return 0;
}

/* Mean luma of cell k's sampling window; see READING in pattern.h. */
static double sample(const unsigned char *px, long long w, long long h,
                     int ps, long long rs, int k) {
  long long cx = (2LL * k + 1) * w / (2 * CELLS), cy = h / 20;
  long long rx = w / (4 * CELLS), ry = h / 60;
  long long x0 = cx - rx, x1 = cx + rx, y0 = cy - ry, y1 = cy + ry;
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > w - 1) x1 = w - 1;
  if (y1 > h - 1) y1 = h - 1;
  unsigned long long sum = 0, n = 0;
  for (long long y = y0; y <= y1; y++) {
    const unsigned char *row = px + y * rs;
    for (long long x = x0; x <= x1; x++) {
      const unsigned char *q = row + x * ps;
      sum += ps == 1 ? q[0] : (77u * q[0] + 150u * q[1] + 29u * q[2]) >> 8;
      n++;
    }
  }
  return (double)sum / (double)n;
}

long long ss_pattern_read_code(const unsigned char *gray_or_rgb, int width,
                               int height, int pixel_stride, int row_stride) {
  if (gray_or_rgb == NULL || width < CELLS || height < 12) return -1;
  if (pixel_stride != 1 && pixel_stride != 3 && pixel_stride != 4) return -1;
  if ((long long)row_stride < (long long)width * pixel_stride) return -1;
  long long w = width, h = height;
  double white = sample(gray_or_rgb, w, h, pixel_stride, row_stride, 0);
  double black =
      sample(gray_or_rgb, w, h, pixel_stride, row_stride, CELLS - 1);
  double contrast = white - black;
  if (contrast < 64) return -1;
  double thr = (white + black) / 2, margin = contrast / 4;
  long long value = 0;
  for (int k = 1; k <= 32; k++) {
    double v = sample(gray_or_rgb, w, h, pixel_stride, row_stride, k);
    if (v - thr < margin && thr - v < margin) return -1;
    value = (value << 1) | (v > thr);
  }
  return value;
}

/* The strongest downscale (num <= denom) that keeps the picture at least
 * 320x180, so a 1280x720 frame decodes at 1/4 size: cells stay over 9 px
 * wide and the decode is several times cheaper. */
static tjscalingfactor pick_scale(int w, int h) {
  tjscalingfactor best = {1, 1};
  int n = 0;
  tjscalingfactor *sf = tjGetScalingFactors(&n);
  for (int i = 0; sf != NULL && i < n; i++) {
    if (sf[i].num > sf[i].denom) continue;
    if (TJSCALED(w, sf[i]) < 320 || TJSCALED(h, sf[i]) < 180) continue;
    if ((long)sf[i].num * best.denom < (long)best.num * sf[i].denom)
      best = sf[i];
  }
  return best;
}

long long ss_pattern_read_jpeg(const unsigned char *jpeg, size_t len) {
  long long result = -1;
  unsigned char *gray = NULL;
  if (jpeg == NULL || len == 0 || len > (unsigned long)-1) return -1;
  tjhandle tj = tjInitDecompress();
  if (tj == NULL) return -1;
  int w, h, subsamp, colorspace;
  if (tjDecompressHeader3(tj, jpeg, (unsigned long)len, &w, &h, &subsamp,
                          &colorspace) != 0)
    goto out;
  if (w < 1 || h < 1 || w > MAX_READ_SIDE || h > MAX_READ_SIDE) goto out;
  tjscalingfactor f = pick_scale(w, h);
  int sw = TJSCALED(w, f), sh = TJSCALED(h, f);
  gray = malloc((size_t)sw * (size_t)sh);
  if (gray == NULL) goto out;
  /* A warning (e.g. "premature end of data") still leaves a usable picture:
   * the code sits in the first rows, so a frame cut short can read fine. */
  if (tjDecompress2(tj, jpeg, (unsigned long)len, gray, sw, sw, sh, TJPF_GRAY,
                    0) != 0 &&
      tjGetErrorCode(tj) != TJERR_WARNING)
    goto out;
  result = ss_pattern_read_code(gray, sw, sh, 1, sw);
out:
  free(gray);
  tjDestroy(tj);
  return result;
}

/*
 * H.264 encoder for the test pattern: raw I420 frames in, one Annex-B
 * access unit per frame out, with Cisco's openh264 (Debian:
 * libopenh264-dev, BSD licence). Optional at build time: when the build
 * did not find openh264 (SS_HAVE_OPENH264 undefined), ss_h264enc_new
 * returns NULL with a message saying what to install, and the rest of the
 * program builds and runs without it.
 *
 * The stream is made for live viewing with the least delay:
 *   - Constrained Baseline profile, CAVLC, one slice, one reference frame:
 *     no B-frames, so every access unit can be shown as soon as it arrives;
 *   - an IDR every `gop_frames` frames, each IDR access unit carrying SPS
 *     and PPS in front of the slice, so a viewer may join at any IDR;
 *   - bit-rate rate control for a real-time camera stream, with frame
 *     skipping disabled: every input frame yields exactly one access unit;
 *   - one encoder thread (the caller decides where the work runs);
 *   - VUI says full-range BT.601, the levels ss_pattern_render_yuv draws.
 *
 * Threads: one encoder is used by one thread at a time; different encoders
 * may run in different threads at once.
 */
#ifndef SS_H264ENC_H
#define SS_H264ENC_H

#include <stddef.h>

typedef struct ss_h264enc ss_h264enc;

/* The bit rate ss_h264enc_new uses when `bitrate_kbps` is 0: 1000 kbit/s
 * for 640x480 at 30 fps, scaled by pixels per second (1280x720@30: 3000),
 * never below 100. At this rate the pattern's block code reads back from
 * every decoded frame, P-frames included. */
int ss_h264enc_default_kbps(int width, int height, double fps);

/* Create an encoder for `width` x `height` frames (even, 16..4096) arriving
 * at `fps` frames per second (1..60; it sets the rate control's budget per
 * frame, not a clock). `bitrate_kbps` is the target in kbit/s (0: the
 * default above; else 50..100000); `gop_frames` is the IDR interval in
 * frames (0: two seconds' worth, at least 1). Returns NULL on a bad
 * argument, out of memory, an encoder error, or when the program was built
 * without openh264, with a message copied into `err` (errlen bytes, may be
 * NULL/0).
 * Example:
 *   char err[160];
 *   ss_h264enc *e = ss_h264enc_new(640, 480, 30, 0, 0, err, sizeof err);
 *   if (e == NULL) fprintf(stderr, "%s\n", err);
 */
ss_h264enc *ss_h264enc_new(int width, int height, double fps, int bitrate_kbps,
                           int gop_frames, char *err, size_t errlen);

/* Free an encoder and its buffers; NULL is a no-op. */
void ss_h264enc_free(ss_h264enc *e);

/* Encode one frame. `planes` are the Y, U and V planes of an I420 picture
 * of the size given to ss_h264enc_new and `strides` their row strides in
 * bytes; both are borrowed for the call (ss_pattern_render_yuv fills them).
 * `force_idr` non-zero makes this frame an IDR; the regular IDR interval
 * then counts from it. On success returns 0 and sets *out / *len to one
 * Annex-B access unit (start code 00 00 00 01 before every NAL unit; SPS,
 * PPS then the IDR slice for a key frame), in a buffer owned by the encoder
 * and valid until the next encode or free (copy it out), and *key to 1 for
 * an IDR access unit, else 0. Returns -1 if the encoder fails or is out of
 * memory; *out, *len and *key are then untouched.
 * Example:
 *   const unsigned char *au; size_t n; int key;
 *   if (ss_h264enc_encode(e, pl, st, 0, &au, &n, &key) == 0)
 *     publish_copy(au, n, key);
 */
int ss_h264enc_encode(ss_h264enc *e, const unsigned char *planes[3],
                      const int strides[3], int force_idr,
                      const unsigned char **out, size_t *len, int *key);

#endif

/*
 * H.264 encoding of raw I420 frames with openh264; the stream it makes is
 * described in h264enc.h. Built without openh264 (no SS_HAVE_OPENH264),
 * only the argument-free parts remain and ss_h264enc_new explains what to
 * install.
 *
 * openh264 hands back a frame as layers: on an IDR the first layer holds
 * SPS and PPS (a "non-video-coding layer"), the next the slice; every NAL
 * unit already starts with 00 00 00 01. The layers are copied back to back
 * into one buffer owned by the encoder, grown only when a frame is larger
 * than every frame before it, so steady state allocates nothing.
 *
 * Allocation uses plain malloc: this is application code outside the
 * library, and its buffers live as long as the stream.
 */
#include "h264enc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SS_H264_MISSING                                                      \
  "H.264 test pattern needs libopenh264 (Debian: libopenh264-dev); rebuild " \
  "after installing it"

enum {
  MIN_SIDE = 16,
  MAX_SIDE = 4096,
  MIN_KBPS = 50,
  MAX_KBPS = 100000,
  FLOOR_KBPS = 100,
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Measured with the pattern at 640x480@30, 1000 kbit/s: IDR access units
 * about 10.7 KB, P about 3.9 KB, 975 kbit/s delivered, every code read back;
 * the code also reads at 100 kbit/s, so the default is chosen for the look
 * of the picture, not for the code. Scaled by pixel rate so bigger pictures
 * keep the same bits per pixel. */
int ss_h264enc_default_kbps(int width, int height, double fps) {
  double rate = (double)width * (double)height * fps;
  double kbps = rate * 1000.0 / (640.0 * 480.0 * 30.0);
  if (!(kbps >= FLOOR_KBPS)) return FLOOR_KBPS; /* also catches NaN */
  if (kbps > MAX_KBPS) return MAX_KBPS;
  return (int)(kbps + 0.5);
}

#ifdef SS_HAVE_OPENH264

#include <wels/codec_api.h>

struct ss_h264enc {
  ISVCEncoder *enc;
  int w, h;
  double fps;
  unsigned long long frames; /* frames encoded: the source timestamps */
  unsigned char *out;        /* the last access unit */
  size_t out_cap;
  char log[160];             /* openh264's last error message */
};

/* openh264 logs through this instead of stderr; keep the last error so a
 * failed Initialize can say why. */
static void on_trace(void *ctx, int level, const char *msg) {
  ss_h264enc *e = ctx;
  if (level > WELS_LOG_ERROR || msg == NULL) return;
  snprintf(e->log, sizeof(e->log), "%s", msg);
  size_t n = strlen(e->log);
  while (n > 0 && (e->log[n - 1] == '\n' || e->log[n - 1] == '\r'))
    e->log[--n] = '\0';
}

static int init_params(ss_h264enc *e, int kbps, int gop) {
  ISVCEncoder enc = *e->enc;
  SEncParamExt p;
  memset(&p, 0, sizeof(p));
  if (enc->GetDefaultParams(e->enc, &p) != cmResultSuccess) return -1;
  p.iUsageType = CAMERA_VIDEO_REAL_TIME;
  p.iPicWidth = e->w;
  p.iPicHeight = e->h;
  p.iTargetBitrate = kbps * 1000;
  /* A ceiling a little above the target lets an IDR overshoot briefly
   * without the rate control starving the P-frames after it. */
  p.iMaxBitrate = kbps * 1250;
  p.iRCMode = RC_BITRATE_MODE;
  p.fMaxFrameRate = (float)e->fps;
  p.bEnableFrameSkip = false; /* one access unit for every input frame */
  p.uiIntraPeriod = (unsigned int)gop;
  p.iTemporalLayerNum = 1;
  p.iSpatialLayerNum = 1;
  p.iNumRefFrame = 1;
  p.eSpsPpsIdStrategy = CONSTANT_ID; /* same SPS/PPS ids at every IDR */
  p.bPrefixNalAddingCtrl = false;
  p.bEnableSSEI = false;
  p.iEntropyCodingModeFlag = 0; /* CAVLC: Baseline has no CABAC */
  p.iMultipleThreadIdc = 1;
  p.bUseLoadBalancing = false;
  p.iLoopFilterDisableIdc = 0;
  p.bEnableDenoise = false;
  /* Scene-change detection would insert extra I-frames on the pattern's
   * sweeping bar; IDRs come from the interval and force_idr only. */
  p.bEnableSceneChangeDetect = false;
  p.bEnableBackgroundDetection = true;
  p.bEnableAdaptiveQuant = true;
  p.bEnableFrameCroppingFlag = true;
  p.bEnableLongTermReference = false;
  /* The code cells are big flat blocks and read back even at QP 51
   * (measured down to 100 kbit/s at 640x480); the ceiling is for the text
   * lines, which stay legible to a person at QP 45. At very low targets
   * the stream overshoots rather than going past it. */
  p.iMaxQp = 45;
  p.iMinQp = 12;

  SSpatialLayerConfig *l = &p.sSpatialLayers[0];
  l->iVideoWidth = e->w;
  l->iVideoHeight = e->h;
  l->fFrameRate = (float)e->fps;
  l->iSpatialBitrate = p.iTargetBitrate;
  l->iMaxSpatialBitrate = p.iMaxBitrate;
  l->uiProfileIdc = PRO_BASELINE;
  l->uiLevelIdc = LEVEL_UNKNOWN; /* openh264 picks it from size and rate */
  l->sSliceArgument.uiSliceMode = SM_SINGLE_SLICE;
  l->sSliceArgument.uiSliceNum = 1;
  /* The pattern draws full-range BT.601 (JFIF) levels; say so, or players
   * would stretch them again as if they were 16..235. */
  l->bVideoSignalTypePresent = true;
  l->uiVideoFormat = 5; /* unspecified */
  l->bFullRange = true;
  l->bColorDescriptionPresent = true;
  l->uiColorPrimaries = 6;          /* SMPTE 170M */
  l->uiTransferCharacteristics = 6; /* SMPTE 170M */
  l->uiColorMatrix = 6;             /* SMPTE 170M = BT.601 */
  return enc->InitializeExt(e->enc, &p) == cmResultSuccess ? 0 : -1;
}

ss_h264enc *ss_h264enc_new(int width, int height, double fps, int bitrate_kbps,
                           int gop_frames, char *err, size_t errlen) {
  if (width < MIN_SIDE || height < MIN_SIDE || width > MAX_SIDE ||
      height > MAX_SIDE || (width | height) & 1) {
    set_err(err, errlen, "H.264 size %dx%d: need even sides in %d..%d", width,
            height, MIN_SIDE, MAX_SIDE);
    return NULL;
  }
  /* openh264 clamps its frame rate at 60, and the rate control then gives
   * each frame twice its share (measured: 120 fps ran at 1.8x the target). */
  if (!(fps >= 1 && fps <= 60)) {
    set_err(err, errlen, "H.264 frame rate %g out of range 1..60", fps);
    return NULL;
  }
  if (bitrate_kbps == 0) bitrate_kbps = ss_h264enc_default_kbps(width, height, fps);
  if (bitrate_kbps < MIN_KBPS || bitrate_kbps > MAX_KBPS) {
    set_err(err, errlen, "H.264 bit rate %d kbit/s out of range %d..%d",
            bitrate_kbps, MIN_KBPS, MAX_KBPS);
    return NULL;
  }
  if (gop_frames == 0) gop_frames = (int)(2 * fps + 0.5);
  if (gop_frames < 1 || gop_frames > 100000) {
    set_err(err, errlen, "H.264 IDR interval %d frames out of range 1..100000",
            gop_frames);
    return NULL;
  }

  ss_h264enc *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    set_err(err, errlen, "out of memory for an H.264 encoder");
    return NULL;
  }
  e->w = width;
  e->h = height;
  e->fps = fps;
  if (WelsCreateSVCEncoder(&e->enc) != 0 || e->enc == NULL) {
    set_err(err, errlen, "openh264: WelsCreateSVCEncoder failed");
    e->enc = NULL;
    goto fail;
  }
  ISVCEncoder enc = *e->enc;
  WelsTraceCallback cb = on_trace;
  void *ctx = e;
  int level = WELS_LOG_ERROR;
  enc->SetOption(e->enc, ENCODER_OPTION_TRACE_CALLBACK_CONTEXT, &ctx);
  enc->SetOption(e->enc, ENCODER_OPTION_TRACE_CALLBACK, &cb);
  enc->SetOption(e->enc, ENCODER_OPTION_TRACE_LEVEL, &level);
  if (init_params(e, bitrate_kbps, gop_frames) != 0) {
    set_err(err, errlen, "openh264: cannot set up %dx%d at %g fps, %d kbit/s%s%s",
            width, height, fps, bitrate_kbps, e->log[0] ? ": " : "", e->log);
    goto fail;
  }
  int fmt = videoFormatI420;
  if (enc->SetOption(e->enc, ENCODER_OPTION_DATAFORMAT, &fmt) !=
      cmResultSuccess) {
    set_err(err, errlen, "openh264: I420 input not accepted");
    goto fail;
  }
  return e;

fail:
  ss_h264enc_free(e);
  return NULL;
}

void ss_h264enc_free(ss_h264enc *e) {
  if (e == NULL) return;
  if (e->enc) {
    (*e->enc)->Uninitialize(e->enc);
    WelsDestroySVCEncoder(e->enc);
  }
  free(e->out);
  free(e);
}

int ss_h264enc_encode(ss_h264enc *e, const unsigned char *planes[3],
                      const int strides[3], int force_idr,
                      const unsigned char **out, size_t *len, int *key) {
  if (e == NULL || planes == NULL || strides == NULL || out == NULL ||
      len == NULL || key == NULL)
    return -1;
  ISVCEncoder enc = *e->enc;
  SSourcePicture pic;
  memset(&pic, 0, sizeof(pic));
  pic.iColorFormat = videoFormatI420;
  pic.iPicWidth = e->w;
  pic.iPicHeight = e->h;
  for (int i = 0; i < 3; i++) {
    if (planes[i] == NULL || strides[i] < (i ? e->w / 2 : e->w)) return -1;
    /* openh264 only reads the source; its struct lacks the const. */
    pic.pData[i] = (unsigned char *)(size_t)planes[i];
    pic.iStride[i] = strides[i];
  }
  /* Timestamps in milliseconds from the nominal rate: the rate control
   * budgets bits per frame from them, whatever the wall clock does. */
  pic.uiTimeStamp = (long long)((double)e->frames * 1000.0 / e->fps + 0.5);

  if (force_idr && enc->ForceIntraFrame(e->enc, true) != cmResultSuccess)
    return -1;
  SFrameBSInfo info;
  memset(&info, 0, sizeof(info));
  if (enc->EncodeFrame(e->enc, &pic, &info) != cmResultSuccess) return -1;
  /* Frame skipping is off, so a skipped or empty frame is a failure. */
  if (info.eFrameType == videoFrameTypeSkip ||
      info.eFrameType == videoFrameTypeInvalid || info.iLayerNum < 1)
    return -1;

  size_t total = 0;
  for (int l = 0; l < info.iLayerNum; l++) {
    const SLayerBSInfo *li = &info.sLayerInfo[l];
    for (int n = 0; n < li->iNalCount; n++) {
      if (li->pNalLengthInByte[n] < 0) return -1;
      total += (size_t)li->pNalLengthInByte[n];
    }
  }
  if (total == 0) return -1;
  if (total > e->out_cap) {
    size_t cap = e->out_cap ? e->out_cap : 64 * 1024;
    while (cap < total) cap *= 2;
    unsigned char *nb = realloc(e->out, cap);
    if (nb == NULL) return -1;
    e->out = nb;
    e->out_cap = cap;
  }
  size_t off = 0;
  for (int l = 0; l < info.iLayerNum; l++) {
    const SLayerBSInfo *li = &info.sLayerInfo[l];
    size_t n = 0;
    for (int k = 0; k < li->iNalCount; k++) n += (size_t)li->pNalLengthInByte[k];
    memcpy(e->out + off, li->pBsBuf, n);
    off += n;
  }
  e->frames++;
  *out = e->out;
  *len = total;
  *key = info.eFrameType == videoFrameTypeIDR;
  return 0;
}

#else /* !SS_HAVE_OPENH264 */

struct ss_h264enc {
  int unused;
};

ss_h264enc *ss_h264enc_new(int width, int height, double fps, int bitrate_kbps,
                           int gop_frames, char *err, size_t errlen) {
  set_err(err, errlen, "%s", SS_H264_MISSING);
  return NULL;
}

void ss_h264enc_free(ss_h264enc *e) { (void)e; }

int ss_h264enc_encode(ss_h264enc *e, const unsigned char *planes[3],
                      const int strides[3], int force_idr,
                      const unsigned char **out, size_t *len, int *key) {
  return -1;
}

#endif

/*
 * A folder of JPEG files as a frame source for sluice-stream (a slide show,
 * or a recorded sequence played in a loop).
 *
 * Opening lists the folder once: files named *.jpg or *.jpeg (any case, not
 * starting with '.'), sorted by name in byte order (strcmp), at most
 * SS_JPEG_DIR_MAX of them (the first ones by name), each at most max_frame
 * bytes and passing a cheap sanity check: it starts with FF D8 FF (SOI and a
 * marker) and ends with FF D9 (EOI), optionally followed by up to
 * SS_JPEG_DIR_PAD zero bytes, the padding some cameras write. Files that
 * fail are skipped and counted by reason in ss_jpeg_dir_skips. Loading reads
 * a file into a caller buffer and repeats the check, since files may change
 * after the listing.
 *
 * Threads: open/close from one thread; count, name, skipped and load only
 * read the listing and may be called from any thread once open returns.
 * Memory: the listing (names only) is allocated with malloc, bounded by
 * SS_JPEG_DIR_MAX names; file contents go only to caller buffers.
 */
#ifndef SS_JPEG_DIR_H
#define SS_JPEG_DIR_H

#include <stddef.h>

#define SS_JPEG_DIR_MAX 10000
#define SS_JPEG_DIR_PAD 4094

typedef struct ss_jpeg_dir ss_jpeg_dir;

/* Why files named like JPEGs were not listed; each file counts once. */
typedef struct ss_jpeg_dir_skips {
  unsigned long too_many;   /* named after the first SS_JPEG_DIR_MAX valid
                               files (not all opened, so some may also be
                               invalid) */
  unsigned long too_big;    /* larger than max_frame */
  unsigned long too_small;  /* fewer than 4 bytes */
  unsigned long bad_soi;    /* does not start with FF D8 FF */
  unsigned long bad_eoi;    /* does not end with FF D9 (+ zero padding) */
  unsigned long unreadable; /* not a regular file, or open/read failed */
} ss_jpeg_dir_skips;

/* List the folder at `path` (borrowed for the call; the folder is kept open,
 * so renaming it later does not matter). Returns NULL with *err (may be
 * NULL) set to a negative errno: -ENOENT, -ENOTDIR, -EACCES, ... from
 * opening or reading the folder, -ENOMEM. An empty listing is not an error.
 * Example:
 *   int err;
 *   ss_jpeg_dir *d = ss_jpeg_dir_open("/srv/frames", 4 << 20, &err);
 */
ss_jpeg_dir *ss_jpeg_dir_open(const char *path, size_t max_frame, int *err);

/* Close the folder and free the listing; NULL is a no-op. */
void ss_jpeg_dir_close(ss_jpeg_dir *d);

/* Number of listed files, 0..SS_JPEG_DIR_MAX. */
size_t ss_jpeg_dir_count(const ss_jpeg_dir *d);

/* Name of file i (owned by d, valid until close), or NULL if i >= count. */
const char *ss_jpeg_dir_name(const ss_jpeg_dir *d, size_t i);

/* Skip counters from the listing (owned by d). */
const ss_jpeg_dir_skips *ss_jpeg_dir_skipped(const ss_jpeg_dir *d);

/* Read file i into buf (cap bytes, borrowed) and set *len to the JPEG's
 * length, SOI to EOI (trailing zero padding is not counted). Returns 0, or
 * -EINVAL (i >= count), -ENOBUFS (the file is larger than cap), -EFBIG (it
 * grew past max_frame), -EBADMSG (it no longer passes the sanity check), or
 * -errno from open/read. On error *len is untouched; buf may have been
 * written.
 * Example:
 *   size_t n;
 *   if (ss_jpeg_dir_load(d, i, buf, max_frame, &n) == 0) publish(buf, n);
 */
int ss_jpeg_dir_load(const ss_jpeg_dir *d, size_t i, unsigned char *buf,
                     size_t cap, size_t *len);

#endif

/*
 * Folder-of-JPEGs frame source; the contract is in jpeg_dir.h.
 *
 * Bounds: the listing holds at most SS_JPEG_DIR_MAX names whatever the size
 * of the folder. While reading the folder the names form a max-heap, so a
 * folder of a million files costs O(n log 10000) comparisons and 10000 names
 * of memory, and the result is the same for any readdir order. A name that
 * cannot make the cut is counted without touching the file; the others cost
 * one open, one fstat and two small preads (head and tail), never a full read.
 *
 * Files are opened with O_NONBLOCK so a FIFO named x.jpg cannot hang the
 * listing (regular files ignore the flag); fstat then rejects it.
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L /* openat, fdopendir, pread, strdup */
#endif
#include "jpeg_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct ss_jpeg_dir {
  int dirfd;       /* the folder, for openat: immune to renames and cwd */
  size_t max_frame;
  char **names;    /* a max-heap while listing, sorted once open returns */
  size_t count, cap;
  ss_jpeg_dir_skips skips;
};

enum verdict { OK, TOO_SMALL, TOO_BIG, BAD_SOI, BAD_EOI, UNREADABLE };

enum { TAIL = SS_JPEG_DIR_PAD + 2 }; /* EOI plus the most padding allowed */

static int jpeg_name(const char *n) {
  size_t l = strlen(n);
  if (n[0] == '.') return 0;
  return (l > 4 && strcasecmp(n + l - 4, ".jpg") == 0) ||
         (l > 5 && strcasecmp(n + l - 5, ".jpeg") == 0);
}

static int has_soi(const unsigned char *p) {
  return p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF;
}

/* `end` holds the last n bytes of a file. Returns how many trailing zero
 * bytes follow its EOI (at most SS_JPEG_DIR_PAD), or -1 if there is no EOI
 * there. */
static long eoi_padding(const unsigned char *end, size_t n) {
  size_t pad = 0;
  while (pad < n && pad < SS_JPEG_DIR_PAD && end[n - 1 - pad] == 0) pad++;
  if (n - pad < 2 || end[n - pad - 2] != 0xFF || end[n - pad - 1] != 0xD9)
    return -1;
  return (long)pad;
}

/* pread until n bytes or end of file; returns bytes read or -errno. */
static long read_at(int fd, unsigned char *buf, size_t n, off_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (long)got;
}

static enum verdict check_file(const ss_jpeg_dir *d, const char *name) {
  unsigned char head[3], tail[TAIL]; /* 4 KiB of stack */
  enum verdict v = UNREADABLE;
  struct stat st;
  int fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return UNREADABLE;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) goto out;
  size_t size = (size_t)st.st_size, n = size < TAIL ? size : TAIL;
  if (size < 4) {
    v = TOO_SMALL;
  } else if ((unsigned long long)st.st_size > d->max_frame) {
    v = TOO_BIG;
  } else if (read_at(fd, head, 3, 0) != 3) {
    v = UNREADABLE;
  } else if (!has_soi(head)) {
    v = BAD_SOI;
  } else if (read_at(fd, tail, n, (off_t)(size - n)) != (long)n) {
    v = UNREADABLE;
  } else {
    v = eoi_padding(tail, n) < 0 ? BAD_EOI : OK;
  }
out:
  close(fd);
  return v;
}

static void count_skip(ss_jpeg_dir_skips *st, enum verdict v) {
  switch (v) {
  case OK: break;
  case TOO_SMALL: st->too_small++; break;
  case TOO_BIG: st->too_big++; break;
  case BAD_SOI: st->bad_soi++; break;
  case BAD_EOI: st->bad_eoi++; break;
  case UNREADABLE: st->unreadable++; break;
  }
}

static void swap(char **a, char **b) {
  char *t = *a;
  *a = *b;
  *b = t;
}

static void sift_up(char **h, size_t i) {
  while (i > 0 && strcmp(h[(i - 1) / 2], h[i]) < 0) {
    swap(&h[(i - 1) / 2], &h[i]);
    i = (i - 1) / 2;
  }
}

static void sift_down(char **h, size_t n, size_t i) {
  for (;;) {
    size_t big = i, l = 2 * i + 1, r = l + 1;
    if (l < n && strcmp(h[l], h[big]) > 0) big = l;
    if (r < n && strcmp(h[r], h[big]) > 0) big = r;
    if (big == i) return;
    swap(&h[i], &h[big]);
    i = big;
  }
}

/* Offer one name to the listing. Returns 0 or -ENOMEM. */
static int offer(ss_jpeg_dir *d, const char *name) {
  int full = d->count == SS_JPEG_DIR_MAX;
  if (full && strcmp(name, d->names[0]) >= 0) {
    d->skips.too_many++;
    return 0;
  }
  enum verdict v = check_file(d, name);
  if (v != OK) {
    count_skip(&d->skips, v);
    return 0;
  }
  char *copy = strdup(name);
  if (copy == NULL) return -ENOMEM;
  if (full) { /* evict the last name by order */
    free(d->names[0]);
    d->names[0] = copy;
    sift_down(d->names, d->count, 0);
    d->skips.too_many++;
    return 0;
  }
  if (d->count == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    if (cap > SS_JPEG_DIR_MAX) cap = SS_JPEG_DIR_MAX;
    char **names = realloc(d->names, cap * sizeof(*names));
    if (names == NULL) {
      free(copy);
      return -ENOMEM;
    }
    d->names = names;
    d->cap = cap;
  }
  d->names[d->count] = copy;
  sift_up(d->names, d->count++);
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

ss_jpeg_dir *ss_jpeg_dir_open(const char *path, size_t max_frame, int *err) {
  int rc = -ENOMEM, fd2;
  DIR *dir = NULL;
  ss_jpeg_dir *d = calloc(1, sizeof(*d));
  if (d == NULL) goto fail;
  d->dirfd = -1;
  d->max_frame = max_frame;
  d->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->dirfd < 0) {
    rc = -errno;
    goto fail;
  }
  /* fdopendir owns its descriptor; keep ours for openat after closedir. */
  fd2 = fcntl(d->dirfd, F_DUPFD_CLOEXEC, 0);
  if (fd2 < 0 || (dir = fdopendir(fd2)) == NULL) {
    rc = -errno;
    if (fd2 >= 0) close(fd2);
    goto fail;
  }
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(dir);
    if (e == NULL) {
      if (errno != 0) {
        rc = -errno;
        goto fail;
      }
      break;
    }
    if (!jpeg_name(e->d_name)) continue;
    if ((rc = offer(d, e->d_name)) != 0) goto fail;
  }
  closedir(dir);
  if (d->count) qsort(d->names, d->count, sizeof(*d->names), cmp_names);
  return d;

fail:
  if (dir) closedir(dir);
  ss_jpeg_dir_close(d);
  if (err) *err = rc;
  return NULL;
}

void ss_jpeg_dir_close(ss_jpeg_dir *d) {
  if (d == NULL) return;
  for (size_t i = 0; i < d->count; i++) free(d->names[i]);
  free(d->names);
  if (d->dirfd >= 0) close(d->dirfd);
  free(d);
}

size_t ss_jpeg_dir_count(const ss_jpeg_dir *d) { return d->count; }

const char *ss_jpeg_dir_name(const ss_jpeg_dir *d, size_t i) {
  return i < d->count ? d->names[i] : NULL;
}

const ss_jpeg_dir_skips *ss_jpeg_dir_skipped(const ss_jpeg_dir *d) {
  return &d->skips;
}

int ss_jpeg_dir_load(const ss_jpeg_dir *d, size_t i, unsigned char *buf,
                     size_t cap, size_t *len) {
  if (i >= d->count) return -EINVAL;
  int rc = -EBADMSG;
  struct stat st;
  int fd = openat(d->dirfd, d->names[i],
                  O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return -errno;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    goto out;
  }
  if (!S_ISREG(st.st_mode)) goto out;
  if ((unsigned long long)st.st_size > d->max_frame) {
    rc = -EFBIG;
    goto out;
  }
  if ((unsigned long long)st.st_size > cap) {
    rc = -ENOBUFS;
    goto out;
  }
  /* A file that shrank since fstat is judged on what is left. */
  long n = read_at(fd, buf, (size_t)st.st_size, 0);
  if (n < 0) {
    rc = (int)n;
    goto out;
  }
  long pad = n >= 4 && has_soi(buf) ? eoi_padding(buf, (size_t)n) : -1;
  if (pad < 0) goto out;
  *len = (size_t)(n - pad);
  rc = 0;
out:
  close(fd);
  return rc;
}

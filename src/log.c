/* A small leveled logger. Lines are formatted into a bounded stack buffer
 * (long lines are cut, never allocated) and handed to one sink. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Read inline by SL_DEBUG (internal.h), so a disabled debug line costs one
 * load and compare, its arguments unevaluated. */
int sl__log_level = SL_LOG_WARN;
static sl_log_fn log_fn;
static void *log_arg;

void sl_log_set(int level, sl_log_fn fn, void *arg) {
  sl__log_level = level;
  log_fn = fn;
  log_arg = arg;
}

int sl__log_enabled(int level) { return level <= sl__log_level; }

void sl_log(int level, const char *fmt, ...) {
  static const char *const names[] = {"", "error", "warn", "info", "debug"};
  if (level > sl__log_level || level <= SL_LOG_NONE) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (log_fn) {
    log_fn(level, line, log_arg);
    return;
  }
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%02d:%02d:%02d.%03ld %-5s %s\n", tm.tm_hour, tm.tm_min,
          tm.tm_sec, ts.tv_nsec / 1000000L,
          names[level > SL_LOG_DEBUG ? SL_LOG_DEBUG : level], line);
}

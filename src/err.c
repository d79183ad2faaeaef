/* Error codes, event names and close reasons, all from the lists in
 * sluice.h so names and messages cannot drift from the enums. */
#include "sluice.h"

const char *sl_version(void) { return SL_VERSION; }

const char *sl_strerror(int err) {
  switch (err) {
#define SL__ERR_MSG(name, val, msg) \
  case val:                         \
    return msg;
    SL_ERRORS(SL__ERR_MSG)
#undef SL__ERR_MSG
    default:
      return "unknown error";
  }
}

const char *sl_err_name(int err) {
  switch (err) {
#define SL__ERR_NAME(name, val, msg) \
  case val:                          \
    return #name;
    SL_ERRORS(SL__ERR_NAME)
#undef SL__ERR_NAME
    default:
      return "SL_E?";
  }
}

const char *sl_ev_name(int ev) {
  static const char *const names[] = {
#define SL__EV_NAME(name, str) str,
      SL_EVENTS(SL__EV_NAME)
#undef SL__EV_NAME
  };
  if (ev < 0 || (size_t)ev >= sizeof(names) / sizeof(names[0])) return "?";
  return names[ev];
}

const char *sl_close_reason_name(int reason) {
  static const char *const names[] = {
#define SL__CR_NAME(name, str) str,
      SL_CLOSE_REASONS(SL__CR_NAME)
#undef SL__CR_NAME
  };
  if (reason < 0 || (size_t)reason >= sizeof(names) / sizeof(names[0]))
    return "?";
  return names[reason];
}

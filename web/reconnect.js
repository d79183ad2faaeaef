/* Reconnect with backoff, shared by the viewer (viewer.js) and the grid
 * (grid.js), loaded before either. After a failure the page waits 0.5 s,
 * then 1 s, 2 s, ... up to 10 s, each delay randomised by ±20 % so that
 * the pages of a restarted server do not all come back in the same
 * instant; a connection that works calls reset(), so its next failure
 * waits 0.5 s again.
 *
 *   const backoff = window.sluiceReconnect(open);
 *   backoff.schedule()  arm one call of open() after the next delay; returns
 *                       the delay in ms
 *   backoff.cancel()    disarm it (the page stops or lets its socket go)
 *   backoff.reset()     the connection works: the next delay is the first
 *   backoff.pending()   true while a call is armed
 *   backoff.attempts()  failures since the last reset
 *
 * window.sluiceCloseWhy(e): the text for a WebSocket close event,
 * 'connection closed' with its code when the browser gave one. */
(function () {
  'use strict';
  const FIRST_MS = 500, MAX_MS = 10000;

  window.sluiceReconnect = function (open) {
    let timer = 0, attempt = 0;
    function cancel() { clearTimeout(timer); timer = 0; }
    return {
      schedule() {
        cancel();
        const delay = Math.min(MAX_MS, FIRST_MS * Math.pow(2, attempt)) * (0.8 + 0.4 * Math.random());
        attempt++;
        timer = setTimeout(() => { timer = 0; open(); }, delay);
        return delay;
      },
      cancel,
      reset() { attempt = 0; },
      pending() { return timer !== 0; },
      attempts() { return attempt; },
    };
  };

  /* 1005: "no status received", which the page should not show as a code. */
  window.sluiceCloseWhy = function (e) {
    return 'connection closed' + (e.code && e.code !== 1005 ? ' (' + e.code + ')' : '');
  };
})();

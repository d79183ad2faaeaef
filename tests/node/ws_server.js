// A WebSocket server built on the npm `ws` package, driven by
// tests/net/test_ws_interop.c to check sluice's client (sl_ws_connect):
//
//   node ws_server.js
//
// It listens on 127.0.0.1, an ephemeral port, and prints "port N" first;
// then one line per observation ("text hello", "close 4003 done"). It
// serves one connection and exits 0 when that connection has closed. `ws`
// fails any unmasked client frame with 1002, so every message it reports
// proves sluice masked it.
'use strict';

const { WebSocketServer } = require('ws');

const out = (line) => process.stdout.write(line + '\n');
const die = (msg) => {
  process.stderr.write(`ws_server: ${msg}\n`);
  process.exit(1);
};
setTimeout(() => die('watchdog: scenario did not finish'), 15000).unref();

// The 32-bit FNV-1a hash, in 8 hex digits (fnv1a() in the C tests).
function fnv1a(b) {
  let h = 0x811c9dc5;
  for (const x of b) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
});
wss.on('listening', () => out(`port ${wss.address().port}`));
wss.on('error', (e) => die(`error: ${e.message}`));

wss.on('connection', (ws, req) => {
  out(`request ${req.url} protocol=${ws.protocol || '-'} x-test=${req.headers['x-test'] || '-'}`);
  // A protocol error of the peer (WS_ERR_EXPECTED_MASK...): ws answers it
  // with a close frame by itself.
  ws.on('error', (e) => out(`error ${e.code}`));
  ws.on('ping', (data) => out(`ping ${data.toString()}`));
  ws.on('pong', (data) => {
    out(`pong ${data.toString()}`);
    // The client is told we saw its pong, so it knows when to move on.
    ws.send(`pong-seen ${data.toString()}`);
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) out(`binary ${data.length} ${fnv1a(data)}`);
    else out(`text ${data.toString()}`);
    if (!isBinary && data.toString() === 'ping-me') return ws.ping('srv');
    if (!isBinary && data.toString() === 'close-me') return ws.close(4004, 'srv-bye');
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => {
    out(`close ${code} ${reason.toString()}`);
    wss.close(() => process.exit(0));
  });
});

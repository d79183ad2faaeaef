// A WebSocket client built on the npm `ws` package, driven by
// tests/net/test_ws_interop.c against a sluice server:
//
//   node ws_client.js URL SCENARIO [ARG]
//
// It prints one line per observation ("text 125 ok", "close 4001 bye"), which
// the C test compares with what it expects, and exits 0; anything unexpected
// exits 1 with a message on stderr. Every scenario ends by itself within a
// few seconds (a watchdog kills it otherwise).
'use strict';

const WebSocket = require('ws');

const [url, scenario, arg] = process.argv.slice(2);
const out = (line) => process.stdout.write(line + '\n');
const die = (msg) => {
  process.stderr.write(`ws_client ${scenario}: ${msg}\n`);
  process.exit(1);
};
setTimeout(() => die('watchdog: scenario did not finish'), 15000).unref();

// Text of exactly `n` UTF-8 bytes, mixing 1- to 4-byte characters.
function textOf(n) {
  const chars = ['s', 'l', '\u00e9', '\u20ac', '\u{1d11e}', ' '];
  const parts = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    let ch = chars[i % chars.length];
    if (len + Buffer.byteLength(ch) > n) ch = 'x';
    parts.push(ch);
    len += Buffer.byteLength(ch);
  }
  return parts.join('');
}

// Binary of `n` bytes, every byte value present.
function binOf(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 255;
  return b;
}

function printClose(ws) {
  ws.on('close', (code, reason) => {
    out(`close ${code} ${reason.toString()}`);
  });
}

function open(protocols, options) {
  const ws = new WebSocket(url, protocols, options);
  ws.on('error', (e) => die(`error: ${e.message}`));
  return ws;
}

const scenarios = {
  // Every size around the 7-bit, 16-bit and 64-bit length forms, up to
  // max_message (1 MiB) exactly, as text and as binary, echoed in order.
  echo() {
    const sizes = [0, 125, 126, 65535, 65536, 1 << 20];
    const todo = [];
    for (const s of sizes) todo.push(['text', s], ['binary', s]);
    const ws = open();
    printClose(ws);
    let cur;
    const next = () => {
      cur = todo.shift();
      if (!cur) return ws.close(1000, 'done');
      const [kind, n] = cur;
      ws.send(kind === 'text' ? textOf(n) : binOf(n), { binary: kind === 'binary' });
    };
    ws.on('open', next);
    ws.on('message', (data, isBinary) => {
      const [kind, n] = cur;
      const want = kind === 'text' ? Buffer.from(textOf(n)) : binOf(n);
      const ok = isBinary === (kind === 'binary') && want.equals(data);
      out(`${kind} ${n} ${ok ? 'ok' : 'MISMATCH len=' + data.length}`);
      next();
    });
  },

  // Fragmented messages from the client; "\u20ac" is split across two
  // fragments, so the server must validate UTF-8 across frame boundaries.
  frag() {
    const ws = open();
    printClose(ws);
    let n = 0;
    ws.on('open', () => {
      ws.send('Hello, ', { fin: false });
      ws.send(Buffer.from([0xe2]), { binary: false, fin: false });
      ws.send(Buffer.from([0x82, 0xac]), { binary: false, fin: false });
      ws.send(' fragmented', { fin: true });
      ws.send(binOf(3), { binary: true, fin: false });
      ws.send(binOf(70000).subarray(3), { binary: true, fin: true });
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) out(`binary ${data.length} ${data.equals(binOf(70000)) ? 'ok' : 'MISMATCH'}`);
      else out(`text ${data.toString()}`);
      if (++n === 2) ws.close(1000);
    });
  },

  // Ping from us (the server answers), then a ping from the server (ws
  // answers by itself; the server tells us it saw the pong).
  ping() {
    const ws = open();
    printClose(ws);
    ws.on('open', () => ws.ping('hello'));
    ws.on('pong', (data) => {
      out(`pong ${data.toString()}`);
      ws.send('ping-me');
    });
    ws.on('ping', (data) => out(`ping ${data.toString()}`));
    ws.on('message', (data) => {
      out(`text ${data.toString()}`);
      ws.close(1000);
    });
  },

  // The server closes with sl_ws_close(c, 4001, "bye").
  'server-close'() {
    const ws = open();
    printClose(ws);
    ws.on('open', () => ws.send('close-me'));
  },

  // We close with 4002 "ciao"; the server echoes the code.
  'client-close'() {
    const ws = open();
    printClose(ws);
    ws.on('open', () => ws.close(4002, 'ciao'));
  },

  // A 16 MiB message: the server refuses it from the header (1009).
  big() {
    const ws = open();
    printClose(ws);
    ws.on('open', () => ws.send(Buffer.alloc(16 << 20, 0x61)));
    ws.on('message', () => die('the server echoed a message over max_message'));
  },

  // Offer subprotocols in ARG order; print the one the server picked.
  proto() {
    const ws = open(arg.split(','));
    printClose(ws);
    ws.on('open', () => {
      out(`protocol ${ws.protocol}`);
      ws.close(1000);
    });
  },

  // Connect with Origin: ARG; print "open" or the refusal status.
  origin() {
    const ws = new WebSocket(url, { origin: arg });
    ws.on('error', () => {}); // the status line below says it all
    ws.on('unexpected-response', (req, res) => {
      out(`status ${res.statusCode}`);
      res.resume();
      res.on('end', () => process.exit(0));
    });
    ws.on('open', () => {
      out('open');
      ws.close(1000);
    });
    ws.on('close', (code) => out(`close ${code}`));
  },

  // Stay connected ARG ms without sending anything ourselves; ws answers
  // the server's keepalive pings on its own. Print how many came.
  idle() {
    const ws = open();
    let pings = 0;
    ws.on('ping', () => pings++);
    ws.on('open', () => setTimeout(() => {
      out(`pings ${pings >= 3 ? '>=3' : pings}`);
      ws.close(1000);
    }, Number(arg)));
    printClose(ws);
  },
};

if (!scenarios[scenario]) die('unknown scenario');
scenarios[scenario]();

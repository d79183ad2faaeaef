// A WebSocket-over-TLS client built on the npm `ws` package, driven by
// tests/net/test_tls.c against a sluice HTTPS server:
//
//   node wss_client.js URL CA_FILE
//
// It verifies the server against CA_FILE (and the URL's host name), sends a
// text message and a binary one of 300000 bytes (many TLS records), expects
// both echoed byte for byte, closes with 1000 and prints one line per
// observation ("text ok", "binary 300000 ok", "close 1000"). Anything
// unexpected exits 1 with the reason on stderr.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const [url, caFile] = process.argv.slice(2);
const out = (line) => process.stdout.write(line + '\n');
const die = (msg) => {
  process.stderr.write(`wss_client: ${msg}\n`);
  process.exit(1);
};
setTimeout(() => die('watchdog: did not finish'), 10000).unref();

const bin = Buffer.alloc(300000);
for (let i = 0; i < bin.length; i++) bin[i] = (i * 131 + 7) & 255;

const ws = new WebSocket(url, { ca: fs.readFileSync(caFile) });
ws.on('error', (e) => die(`error: ${e.message}`));
ws.on('open', () => ws.send('hello over wss'));
let n = 0;
ws.on('message', (data, isBinary) => {
  if (n++ === 0) {
    out(`text ${!isBinary && data.toString() === 'hello over wss' ? 'ok' : 'MISMATCH'}`);
    ws.send(bin, { binary: true });
  } else {
    out(`binary ${data.length} ${isBinary && bin.equals(data) ? 'ok' : 'MISMATCH'}`);
    ws.close(1000, 'done');
  }
});
ws.on('close', (code) => {
  out(`close ${code}`);
  process.exit(0);
});

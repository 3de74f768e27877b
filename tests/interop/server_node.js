'use strict';
// Node `ws` (npm, v8) echo server for duplex's client.
//
//   node server_node.js [--tls-cert CERT --tls-key KEY]
//
// Listens on 127.0.0.1, an ephemeral port; prints "listening PORT" once ready. Paths:
//   /          echoes every message, text as text, binary as binary;
//   /fragment  echoes each message in three fragments (a UTF-8 character may be split between
//              them), with a ping between the fragments whose pong must carry the same payload:
//              a ping still unanswered after 10 s, or when the connection ends, is an error
//              (also /fragment?QUERY, which run_interop.sh uses for a client that never answers);
//   /close     echoes the first message, then closes with 4001 "server says bye".
// When a connection ends it prints "closed PATH CODE REASON" (the code and reason the client
// sent), and "error PATH WHAT" for anything the client got wrong. Runs until killed.
// `ws` is found through NODE_PATH or tests/interop/node_modules (npm ci).
const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

const TIMEOUT = 10000;

const args = {};
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (a === '--tls-cert') args.cert = process.argv[++i];
  else if (a === '--tls-key') args.key = process.argv[++i];
  else {
    console.error('usage: server_node.js [--tls-cert CERT --tls-key KEY]');
    process.exit(2);
  }
}

const httpServer = args.cert
  ? https.createServer({ cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) })
  : http.createServer();
const wss = new WebSocketServer({ server: httpServer, maxPayload: 64 << 20 });

wss.on('connection', (ws, request) => {
  const path = request.url;
  const fragmenting = path === '/fragment' || path.startsWith('/fragment?');
  // Pings sent between fragments whose pong has not come yet: payload -> timer. Each payload is
  // unique, so a pong answers exactly one of them.
  const pending = new Map();
  let sequence = 0;
  ws.on('pong', (data) => {
    const payload = Buffer.from(data).toString();
    if (pending.has(payload)) {
      clearTimeout(pending.get(payload));
      pending.delete(payload);
    }
  });
  ws.on('message', (data, isBinary) => {
    if (fragmenting) {
      const cut1 = Math.floor(data.length / 3);
      const cut2 = Math.floor((2 * data.length) / 3);
      const payload = `ping ${++sequence} ${data.length}`;
      pending.set(payload, setTimeout(() => {
        pending.delete(payload);
        console.log(`error ${path} no pong within ${TIMEOUT} ms for a ping sent between fragments`);
      }, TIMEOUT));
      ws.send(data.subarray(0, cut1), { binary: isBinary, fin: false });
      ws.ping(payload);
      ws.send(data.subarray(cut1, cut2), { binary: isBinary, fin: false });
      ws.send(data.subarray(cut2), { binary: isBinary, fin: true });
    } else {
      ws.send(data, { binary: isBinary });
    }
    if (path === '/close') ws.close(4001, 'server says bye');
  });
  ws.on('error', (e) => console.log(`error ${path} ${e.message}`));
  ws.on('close', (code, reason) => {
    // A client that closes (or drops) without answering must not pass because it left first.
    for (const [payload, timer] of pending) {
      clearTimeout(timer);
      console.log(`error ${path} the connection ended with no pong for '${payload}', sent between fragments`);
    }
    pending.clear();
    console.log(`closed ${path} ${code} ${reason.toString()}`);
  });
});

httpServer.listen(0, '127.0.0.1', () => {
  console.log(`listening ${httpServer.address().port}`);
});

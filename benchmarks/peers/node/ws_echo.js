'use strict';
// ws_echo.js — Node `ws` (npm, v8) as a benchmark peer, with the options every peer shares: no
// compression, 16 MiB message limit, TCP_NODELAY, one thread (Node's event loop).
//
//   node ws_echo.js [--port P] [--deflate]   (0 picks a free port; prints "listening on PORT")
//
// --deflate turns perMessageDeflate on with the settings every peer's --deflate shares: zlib
// level 6, memLevel 8, context takeover, every message compressed (threshold 0); ws's other
// defaults (at most 10 compressions at once, on libuv's thread pool) stay.
//
// Paths: / echoes, text as text and binary as binary; /sub joins the broadcast room; each
// message on /pub is sent to every member by a loop (ws has no rooms). `ws` is found through
// NODE_PATH (benchmarks/run.sh installs it from tests/interop/package-lock.json).
const http = require('http');
const { WebSocketServer } = require('ws');

let port = 9305;
let deflate = false;
for (let i = 2; i < process.argv.length; ++i) {
  if (process.argv[i] === '--port' && i + 1 < process.argv.length) {
    port = Number(process.argv[++i]);
  } else if (process.argv[i] === '--deflate') {
    deflate = true;
  } else {
    console.error('usage: ws_echo.js [--port P] [--deflate]');
    process.exit(2);
  }
}

const members = new Set();
const server = http.createServer();
const wss = new WebSocketServer({
  server,
  perMessageDeflate: deflate
    ? { threshold: 0, zlibDeflateOptions: { level: 6, memLevel: 8 } }
    : false,
  maxPayload: 16 << 20,
  clientTracking: false,
});

wss.on('connection', (ws, request) => {
  request.socket.setNoDelay(true);
  if (request.url === '/sub') {
    members.add(ws);
    ws.on('close', () => members.delete(ws));
  } else if (request.url === '/pub') {
    ws.on('message', (data, isBinary) => {
      for (const member of members) member.send(data, { binary: isBinary });
    });
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
  ws.on('error', () => {});
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));

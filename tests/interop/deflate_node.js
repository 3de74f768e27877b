'use strict';
// permessage-deflate (RFC 7692) between duplex and Node `ws`, in both roles and in each of the
// parameter variants ws offers or accepts.
//
//   node deflate_node.js --echo-server PATH --echo-client PATH
//
// Server role: ws clients with perMessageDeflate variants against examples/echo_server (which
// accepts permessage-deflate when built with zlib). Client role: ws servers with variants
// against examples/echo_client (default client_options, which offer it where built with zlib).
// Each variant checks the Sec-WebSocket-Extensions the 101 carried, that every echo is exact,
// and that the bytes duplex put on the wire are far fewer than the payload: duplex really
// compressed, rather than the extension being agreed and then left unused. Exit 0 when every
// check passed, 1 otherwise. `ws` is found through NODE_PATH or tests/interop/node_modules.
const { spawn } = require('child_process');
const crypto = require('crypto');
const http = require('http');
const readline = require('readline');
const WebSocket = require('ws');
const { WebSocketServer } = require('ws');

const TIMEOUT = 30000; // ms for any single step

const failures = [];
function check(condition, what) {
  if (!condition) {
    failures.push(what);
    console.log(`  FAIL: ${what}`);
  }
  return condition;
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--echo-server') args.echoServer = argv[++i];
    else if (argv[i] === '--echo-client') args.echoClient = argv[++i];
  }
  if (!args.echoServer || !args.echoClient) {
    console.error('usage: deflate_node.js --echo-server PATH --echo-client PATH');
    process.exit(2);
  }
  return args;
}

// JSON-like text that compresses as chat and API traffic does: the same keys, other values.
function jsonLike(size, seed) {
  let text = '';
  for (let i = 0; text.length < size; ++i)
    text += JSON.stringify({ id: seed * 1000 + i, user: `user${(seed + i) % 17}`, room: 'lobby',
                             text: `message number ${i} of the test`, ok: i % 2 === 0 }) + ',';
  return text.slice(0, size);
}

// The messages of one exchange: many small ones (below and above any threshold), larger text,
// incompressible binary, empty ones.
function messages() {
  const list = [];
  for (let i = 0; i < 20; ++i) list.push({ data: jsonLike(200, i), binary: false });
  list.push({ data: 'tiny', binary: false });
  list.push({ data: '', binary: false });
  list.push({ data: jsonLike(16 * 1024, 99), binary: false });
  list.push({ data: jsonLike(1 << 20, 7), binary: false });
  list.push({ data: crypto.randomBytes(64 * 1024), binary: true });
  list.push({ data: Buffer.alloc(0), binary: true });
  return list;
}

function payloadBytes(list) {
  return list.reduce((n, m) => n + Buffer.byteLength(m.data), 0);
}

// ---- server role: ws clients against echo_server ------------------------------------------

function startEchoServer(path) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const child = spawn(path, ['--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
      child.on('error', reject);
      child.on('exit', (code) => reject(new Error(`echo_server exited with ${code}`)));
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const m = /^echo server listening on ws:\/\/.*:(\d+)$/.exec(line);
        if (m) resolve({ child, port: Number(m[1]) });
      });
    }),
    'echo_server start'
  );
}

async function serverVariant(port, name, perMessageDeflate, expectResponse) {
  const before = failures.length;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate, maxPayload: 64 << 20 });
  let response = null;
  ws.on('upgrade', (res) => {
    response = res.headers['sec-websocket-extensions'] || '';
  });
  const received = [];
  let wake = null;
  ws.on('message', (data, isBinary) => {
    received.push({ data, isBinary });
    if (wake) wake();
  });
  const closed = new Promise((resolve) => ws.on('close', resolve));
  await withTimeout(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }),
    `${name}: open`
  );
  check(response !== null && expectResponse.test(response),
        `${name}: 101 extensions '${response}' do not match ${expectResponse}`);

  const list = messages();
  for (const m of list) {
    ws.send(m.data, { binary: m.binary });
    await withTimeout(
      (async () => {
        while (received.length === 0) await new Promise((r) => { wake = r; });
      })(),
      `${name}: echo of ${Buffer.byteLength(m.data)} bytes`
    );
    const reply = received.shift();
    check(reply.isBinary === m.binary && reply.data.equals(Buffer.from(m.data)),
          `${name}: the echo of ${Buffer.byteLength(m.data)} bytes differs`);
  }
  // Everything echo_server sent, headers and frames: compressed, the text is a small part.
  const wire = ws._socket.bytesRead;
  const payload = payloadBytes(list);
  check(wire < payload / 4, `${name}: echo_server sent ${wire} bytes for ${payload} of payload: not compressed`);
  ws.close(1000, 'bye');
  await withTimeout(closed, `${name}: close`);
  console.log(`${failures.length === before ? 'ok  ' : 'FAIL'} server role, ${name}: '${response}', ${wire} bytes on the wire for ${payload}`);
}

async function serverRole(args) {
  const { child, port } = await startEchoServer(args.echoServer);
  try {
    await serverVariant(port, "ws's default offer", { threshold: 0 }, /^permessage-deflate\b/);
    await serverVariant(port, 'no context takeover either way',
                        { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true },
                        /^permessage-deflate\b.*server_no_context_takeover/);
    await serverVariant(port, 'server window 10 bits, client 11',
                        { threshold: 0, serverMaxWindowBits: 10, clientMaxWindowBits: 11 },
                        /^permessage-deflate\b.*server_max_window_bits=(9|10)\b/);
  } finally {
    child.removeAllListeners('exit');
    child.kill('SIGTERM');
  }
}

// ---- client role: ws servers against echo_client -----------------------------------------

async function clientVariant(args, name, perMessageDeflate, expectResponse) {
  const before = failures.length;
  const server = http.createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate, maxPayload: 64 << 20 });
  let response = null;
  wss.on('headers', (headers) => {
    const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
    response = line ? line.replace(/^[^:]*:\s*/, '') : '';
  });
  let wire = null;
  const done = new Promise((resolve) => {
    wss.on('connection', (ws, request) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', () => {
        wire = request.socket.bytesRead;
        resolve();
      });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;

  // echo_client sends each stdin line as a text message and prints '< LINE  (N us)'.
  const lines = [];
  for (let i = 0; i < 20; ++i) lines.push(jsonLike(200, i));
  lines.push('tiny');
  lines.push(jsonLike(16 * 1024, 42));
  lines.push(jsonLike(256 * 1024, 3));
  const child = spawn(args.echoClient, [`ws://127.0.0.1:${port}/`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const replies = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const m = /^< (.*) {2}\(\d+ us\)$/.exec(line);
    if (m) replies.push(m[1]);
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.stdin.end(lines.join('\n') + '\n');
  const status = await withTimeout(exited, `${name}: echo_client`);
  await withTimeout(done, `${name}: the connection's end`);
  server.close();

  check(status === 0, `${name}: echo_client exited with ${status}`);
  check(response !== null && expectResponse.test(response),
        `${name}: 101 extensions '${response}' do not match ${expectResponse}`);
  check(replies.length === lines.length, `${name}: ${replies.length} of ${lines.length} replies`);
  for (let i = 0; i < Math.min(lines.length, replies.length); ++i)
    check(replies[i] === lines[i], `${name}: reply ${i} differs from the line sent`);
  // What echo_client sent, its upgrade request included: compressed, a small part of the text.
  const payload = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
  check(wire !== null && wire < payload / 4,
        `${name}: echo_client sent ${wire} bytes for ${payload} of payload: not compressed`);
  console.log(`${failures.length === before ? 'ok  ' : 'FAIL'} client role, ${name}: '${response}', ${wire} bytes on the wire for ${payload}`);
}

async function clientRole(args) {
  await clientVariant(args, "ws's default acceptance", { threshold: 0 }, /^permessage-deflate\b/);
  await clientVariant(args, 'no context takeover either way',
                      { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true },
                      /^permessage-deflate\b.*server_no_context_takeover/);
  // duplex's offer leaves client_max_window_bits open: ws chooses 9 bits for duplex's sends.
  await clientVariant(args, 'client window chosen by the server: 9 bits',
                      { threshold: 0, clientMaxWindowBits: 9 },
                      /^permessage-deflate\b.*client_max_window_bits=9\b/);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  console.log(`node ${process.version} ws ${require('ws/package.json').version}`);
  for (const [name, run] of [['server role', serverRole], ['client role', clientRole]]) {
    try {
      await run(args);
    } catch (e) {
      check(false, `${name}: ${e.message}`);
    }
  }
  if (failures.length) {
    console.log(`${failures.length} check(s) failed`);
    process.exit(1);
  }
  console.log('all checks passed');
  process.exit(0);
}

main();

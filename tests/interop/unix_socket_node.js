'use strict';
// Node `ws` (npm, v8) and duplex over a Unix-domain socket, both ways, with Node's own
// ws+unix: URLs:
//
//   node unix_socket_node.js PATH/TO/unix_socket_echo
//
// 1. `unix_socket_echo --serve` listens on a socket file; a Node ws client connects to
//    ws+unix:PATH:/target and has text and binary messages of several sizes echoed; SIGTERM
//    then stops the server, which closes the connection with 1001, exits 0 and removes its
//    socket file.
// 2. A Node ws server listens on a socket file; `unix_socket_echo --connect ws+unix://...`
//    connects to it, and the server sees the request target and Host: localhost.
// Prints one line per step and exits non-zero if any check failed. `ws` is found through
// NODE_PATH or tests/interop/node_modules (npm ci).
const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const WebSocket = require('ws');

const SIZES = [0, 125, 126, 65535, 65536, 1 << 20];
const TIMEOUT = 10000; // ms for any single step

const failures = [];
function check(condition, what) {
  if (!condition) {
    failures.push(what);
    console.log(`  FAIL: ${what}`);
  }
  return condition;
}

function within(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Resolves with the child's stdout once `line` appeared in it.
function waitForLine(child, line) {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes(line)) resolve(out);
    });
    child.on('exit', (code) => reject(new Error(`exited (${code}) before printing "${line}"`)));
  });
}

function exited(child) {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

async function ourServerNodeClient(binary, dir) {
  console.log('duplex server on a Unix socket, Node ws client with ws+unix:');
  const socketPath = path.join(dir, 'duplex.sock');
  const server = childProcess.spawn(binary, ['--serve', '--path', socketPath],
                                    { stdio: ['ignore', 'pipe', 'inherit'] });
  const serverExit = exited(server);
  try {
    await within(waitForLine(server, 'listening on'), 'the server to listen');
    check(fs.lstatSync(socketPath).isSocket(), 'the socket file exists');

    const ws = new WebSocket(`ws+unix:${socketPath}:/echo?from=node`);
    await within(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }), 'the upgrade');
    const replies = [];
    let waiter = null;
    ws.on('message', (data, isBinary) => {
      replies.push({ data, isBinary });
      if (waiter) waiter();
    });
    const next = () => new Promise((resolve) => {
      if (replies.length) return resolve(replies.shift());
      waiter = () => { waiter = null; resolve(replies.shift()); };
    });
    for (const size of SIZES) {
      const payload = crypto.randomBytes(size);
      ws.send(payload, { binary: true });
      const reply = await within(next(), `the echo of ${size} bytes`);
      check(reply.isBinary && Buffer.compare(reply.data, payload) === 0,
            `${size} binary bytes echoed unchanged`);
      const text = 'é'.repeat(size >> 1);
      ws.send(text);
      const textReply = await within(next(), `the echo of ${text.length} characters`);
      check(!textReply.isBinary && textReply.data.toString() === text,
            `${Buffer.byteLength(text)} bytes of text echoed unchanged`);
    }
    console.log(`  echoed ${SIZES.length * 2} messages of 0 B to ${SIZES[SIZES.length - 1]} B`);

    const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    server.kill('SIGTERM');
    const code = await within(closed, 'the close after SIGTERM');
    check(code === 1001, `the server closes with 1001 when stopped (got ${code})`);
    const end = await within(serverExit, 'the server to exit');
    check(end.code === 0, `the server exits with 0 (got ${end.code}, ${end.signal})`);
    check(!fs.existsSync(socketPath), 'the server removed its socket file');
  } finally {
    server.kill('SIGKILL');
  }
}

async function nodeServerOurClient(binary, dir) {
  console.log('Node ws server on a Unix socket, duplex client with ws+unix:');
  const socketPath = path.join(dir, 'node.sock');
  const httpServer = http.createServer();
  const wss = new WebSocket.Server({ server: httpServer });
  const seen = [];
  wss.on('connection', (ws, request) => {
    seen.push({ url: request.url, host: request.headers.host });
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise((resolve) => httpServer.listen(socketPath, resolve));
  try {
    const client = childProcess.spawn(binary, ['--connect', `ws+unix://${socketPath}:/from-duplex?x=1`],
                                      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    client.stdout.on('data', (chunk) => { out += chunk; });
    const end = await within(exited(client), 'the duplex client to finish');
    check(end.code === 0, `the duplex client exits with 0 (got ${end.code}, ${end.signal})`);
    check(out.includes('echo: hello over a Unix socket'), `the duplex client printed the echo: ${out.trim()}`);
    check(seen.length === 1 && seen[0].url === '/from-duplex?x=1',
          `the Node server saw the target /from-duplex?x=1 (${JSON.stringify(seen)})`);
    check(seen.length === 1 && seen[0].host === 'localhost', 'the Node server saw Host: localhost');
  } finally {
    wss.close();
    httpServer.close();
  }
}

async function main() {
  const binary = process.argv[2];
  if (!binary) {
    console.error('usage: unix_socket_node.js PATH/TO/unix_socket_echo');
    process.exit(2);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'duplex-unix-'));
  try {
    await ourServerNodeClient(binary, dir);
    await nodeServerOurClient(binary, dir);
  } catch (e) {
    check(false, e.message);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(failures.length ? `${failures.length} check(s) failed` : 'all checks passed');
  process.exit(failures.length ? 1 : 0);
}

main();

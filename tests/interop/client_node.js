'use strict';
// Node `ws` (npm, v8) as a client of duplex's echo_server.
//
//   node client_node.js URL --small-url URL2 [--ca CERT] [--shutdown-pid PID]
//
// URL is an echo_server whose --max-message fits 4 MiB; URL2 one started with --max-message 1000
// (for the 1009 case). With --shutdown-pid the last case sends SIGTERM to that echo_server while
// a connection is open and expects the server-initiated close 1001 (graceful shutdown).
// Prints one line per case and exits non-zero if any check failed. `ws` is found through
// NODE_PATH or tests/interop/node_modules (npm ci).
const crypto = require('crypto');
const fs = require('fs');
const WebSocket = require('ws');

const SIZES = [0, 125, 126, 65535, 65536, 4 << 20];
const TIMEOUT = 10000; // ms for any single step

const failures = [];
function check(condition, what) {
  if (!condition) {
    const text = typeof what === 'function' ? what() : what;
    failures.push(text);
    console.log(`  FAIL: ${text}`);
  }
  return condition;
}

function parseArgs(argv) {
  const args = { url: null, smallUrl: null, ca: null, shutdownPid: 0 };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--small-url') args.smallUrl = argv[++i];
    else if (a === '--ca') args.ca = argv[++i];
    else if (a === '--shutdown-pid') args.shutdownPid = Number(argv[++i]);
    else args.url = a;
  }
  if (!args.url || !args.smallUrl) {
    console.error('usage: client_node.js URL --small-url URL2 [--ca CERT] [--shutdown-pid PID]');
    process.exit(2);
  }
  return args;
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A connection with a queue of received messages and a promise for its close.
class Peer {
  constructor(url, ca) {
    this.ws = new WebSocket(url, {
      ca: ca ? fs.readFileSync(ca) : undefined,
      family: 4, // echo_server listens on 127.0.0.1 only
      maxPayload: 64 << 20,
    });
    this.messages = [];
    this.waiting = null;
    this.pongs = [];
    this.ws.on('message', (data, isBinary) => {
      this.messages.push({ data, isBinary });
      if (this.waiting) this.waiting();
    });
    this.ws.on('pong', (data) => this.pongs.push(Buffer.from(data)));
    this.ws.on('error', (e) => {
      this.error = e;
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
        if (this.waiting) this.waiting();
      });
    });
  }

  open() {
    return withTimeout(
      new Promise((resolve, reject) => {
        this.ws.once('open', resolve);
        this.ws.once('error', reject);
      }),
      'open'
    );
  }

  async next() {
    const wait = async () => {
      while (this.messages.length === 0) {
        if (this.closeCode !== undefined)
          throw new Error(`connection closed (${this.closeCode} ${this.closeReason})`);
        await new Promise((resolve) => {
          this.waiting = resolve;
        });
        this.waiting = null;
      }
      return this.messages.shift();
    };
    return withTimeout(wait(), 'next message');
  }

  send(data, options) {
    return new Promise((resolve, reject) =>
      this.ws.send(data, options || {}, (e) => (e ? reject(e) : resolve()))
    );
  }

  async expectClose(codes, label) {
    await withTimeout(this.closed, `${label}: close`);
    for (const m of this.messages)
      check(false, `${label}: unexpected message of ${m.data.length} bytes before the close`);
    check(
      codes.includes(this.closeCode),
      `${label}: server closed with ${this.closeCode} '${this.closeReason}', expected ${codes}`
    );
  }

  async close(code, reason) {
    this.ws.close(code, reason);
    await withTimeout(this.closed, 'close');
  }
}

function describeMismatch(sent, got) {
  if (sent.length !== got.length) return `sent ${sent.length} bytes, got ${got.length}`;
  for (let i = 0; i < sent.length; ++i)
    if (sent[i] !== got[i]) return `same length ${sent.length}, first difference at offset ${i}`;
  return 'equal';
}

async function echo(peer, data, isBinary, label) {
  const sent = Buffer.from(data);
  await peer.send(data, { binary: isBinary });
  const reply = await peer.next();
  check(reply.isBinary === isBinary, `${label}: reply has the wrong type`);
  check(reply.data.equals(sent), () => `${label}: echo differs (${describeMismatch(sent, reply.data)})`);
}

function textOf(n) {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  return letters.repeat(Math.floor(n / letters.length) + 1).slice(0, n);
}

async function connect(url, args) {
  const peer = new Peer(url, args.ca);
  await peer.open();
  return peer;
}

async function caseSizes(args) {
  const peer = await connect(args.url, args);
  for (const n of SIZES) {
    await echo(peer, textOf(n), false, `text ${n} bytes`);
    await echo(peer, crypto.randomBytes(n), true, `binary ${n} bytes`);
  }
  await peer.close(1000);
}

async function caseUtf8(args) {
  const peer = await connect(args.url, args);
  await echo(peer, 'héllo wörld — ✓ 😀 日本語 ﷽', false, 'multi-byte UTF-8');
  await echo(peer, '€😀ü'.repeat(30000), false, 'multi-byte UTF-8, 270000 bytes');
  await peer.close(1000);
}

async function caseFragmented(args) {
  const peer = await connect(args.url, args);
  // ws sends a message in fragments with fin: false on all but the last send.
  peer.send('frag', { fin: false });
  peer.send('men', { fin: false });
  peer.send('', { fin: false });
  await peer.send('ted ü😀', { fin: true });
  let reply = await peer.next();
  check(!reply.isBinary && reply.data.toString() === 'fragmented ü😀', () => `fragmented text: got '${reply.data}'`);

  const parts = [crypto.randomBytes(10), Buffer.alloc(0), crypto.randomBytes(70000), crypto.randomBytes(1)];
  parts.forEach((p, i) => peer.send(p, { binary: true, fin: i === parts.length - 1 }));
  reply = await peer.next();
  check(reply.isBinary && reply.data.equals(Buffer.concat(parts)), 'fragmented binary: echo differs');

  // A 4-byte character split across fragments, and a ping between the fragments.
  const bytes = Buffer.from('a😀b');
  peer.send(bytes.subarray(0, 3), { binary: false, fin: false });
  peer.ws.ping('between fragments');
  peer.send(bytes.subarray(3, 4), { fin: false });
  await peer.send(bytes.subarray(4), { fin: true });
  reply = await peer.next();
  check(reply.data.toString() === 'a😀b', () => `text with a character split across fragments: got '${reply.data}'`);
  check(
    peer.pongs.some((p) => p.toString() === 'between fragments'),
    'ping between fragments: no pong with the same payload'
  );
  await peer.close(1000);
}

async function casePing(args) {
  const peer = await connect(args.url, args);
  for (const payload of [Buffer.alloc(0), Buffer.from('hello'), Buffer.from([...Array(125).keys()])]) {
    const before = peer.pongs.length;
    peer.ws.ping(payload);
    await withTimeout(
      (async () => {
        while (peer.pongs.length === before) await new Promise((r) => setTimeout(r, 5));
      })(),
      `pong for a ${payload.length}-byte ping`
    ).catch((e) => check(false, e.message));
    const pong = peer.pongs[before];
    check(pong && pong.equals(payload), `ping with ${payload.length} bytes: pong payload differs`);
  }
  peer.ws.pong('unsolicited'); // must be ignored
  await echo(peer, 'after an unsolicited pong', false, 'echo after an unsolicited pong');
  await peer.close(1000);
}

async function caseClose(args) {
  let peer = await connect(args.url, args);
  await echo(peer, 'x', false, 'echo before close 1000');
  await peer.close(1000, 'done');
  check(peer.closeCode === 1000, `close 1000: server answered ${peer.closeCode}`);

  peer = await connect(args.url, args);
  await peer.close(4000, 'custom reason ✓');
  check(peer.closeCode === 4000, `close 4000: server answered ${peer.closeCode}`);

  // ws.close() without a code sends an empty close frame: the answer is empty (1005) or 1000.
  peer = await connect(args.url, args);
  await peer.close();
  check([1005, 1000].includes(peer.closeCode), `empty close: server answered ${peer.closeCode}`);
}

// A masked client frame built by hand, for what ws refuses to send (a close code it considers
// invalid, a continuation with no message to continue).
function rawFrame(firstByte, payload) {
  const mask = crypto.randomBytes(4);
  const length = payload.length; // < 126: these frames are small
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([firstByte, 0x80 | length]), mask, masked]);
}

async function caseProtocolErrors(args) {
  // ws does not validate what it sends: a Buffer with binary: false goes out as text as-is.
  let peer = await connect(args.url, args);
  peer.send(Buffer.from([0x6f, 0x6b, 0xff, 0xfe]), { binary: false }).catch(() => {});
  await peer.expectClose([1007], 'invalid UTF-8 text (RFC 6455 8.1)');

  peer = await connect(args.url, args);
  peer.send('ok ', { fin: false }).catch(() => {});
  peer.send(Buffer.from([0xed, 0xa0, 0x80]), { fin: true }).catch(() => {}); // a surrogate
  await peer.expectClose([1007], 'UTF-16 surrogate in a continuation frame');

  // The rest go straight to ws's socket (TLS included): ws itself will not send them.
  peer = await connect(args.url, args);
  peer.ws._socket.write(rawFrame(0x88, Buffer.from([0x03, 0xe8, 0xff])));
  await peer.expectClose([1007, 1002], 'close reason that is not UTF-8 (RFC 6455 5.5.1)');

  peer = await connect(args.url, args);
  peer.ws._socket.write(rawFrame(0x88, Buffer.from([0x03, 0xe7])));
  await peer.expectClose([1002], 'close code 999 (RFC 6455 7.4)');

  peer = await connect(args.url, args);
  peer.ws._socket.write(rawFrame(0x80, Buffer.from('no message to continue')));
  await peer.expectClose([1002], 'continuation frame without a message (RFC 6455 5.4)');
}

async function caseTooBig(args) {
  const peer = await connect(args.smallUrl, args);
  await echo(peer, crypto.randomBytes(1000), true, 'binary at the 1000-byte limit');
  peer.send(Buffer.alloc(1001, 0x79), { binary: true }).catch(() => {});
  await peer.expectClose([1009], 'binary over the 1000-byte limit (RFC 6455 7.4.1)');
}

async function caseShutdown(args) {
  const peer = await connect(args.url, args);
  await echo(peer, 'before shutdown', false, 'echo before shutdown');
  process.kill(args.shutdownPid, 'SIGTERM');
  await peer.expectClose([1001], 'server-initiated close on SIGTERM (going away)');
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const version = require('ws/package.json').version;
  console.log(`node ${process.version} ws ${version} -> ${args.url}`);
  const cases = [
    ['text and binary of 0, 125, 126, 65535, 65536 bytes and 4 MiB', caseSizes],
    ['UTF-8 text with multi-byte characters', caseUtf8],
    ['fragmented messages', caseFragmented],
    ['ping/pong', casePing],
    ['client closes: 1000, 4000 + reason, empty', caseClose],
    ['invalid input: 1007 and 1002', caseProtocolErrors],
    ['message over the limit: 1009', caseTooBig],
  ];
  if (args.shutdownPid) cases.push(['server closes: graceful shutdown', caseShutdown]);
  for (const [name, run] of cases) {
    const before = failures.length;
    try {
      await run(args);
    } catch (e) {
      check(false, `${name}: ${e.message}`);
    }
    console.log(`${failures.length === before ? 'ok  ' : 'FAIL'} ${name}`);
  }
  if (failures.length) {
    console.log(`${failures.length} check(s) failed:\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
  console.log('all checks passed');
  process.exit(0);
}

main();

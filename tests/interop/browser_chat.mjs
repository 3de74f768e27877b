// Browser test of examples/chat: headless Chromium, driven by playwright-core, uses the chat
// page that chat_server serves, as two users in one room, over ws:// or wss://.
//
//   node browser_chat.mjs --scheme ws|wss --chat-server PATH [--chromium PATH] [--screenshots DIR]
//
// Checks: /, /health and /metrics; a raw upgrade with a wrong token gets 401 and no frame; the
// page's connections negotiate permessage-deflate (the 101s Chromium received, through the
// DevTools protocol, and ws.extensions in the page); two pages see each other's presence and
// messages, history after a reconnect, a ping; the page
// shows the refusal of a wrong token; error events, the 500-character cap, the rate limit
// (1008), the 64 KiB limit (1009) and /echo, from the browser's own WebSocket. wss makes a
// self-signed certificate with openssl. Screenshots go to --screenshots (chat-SCHEME.png and
// chat-SCHEME-refused.png). Only 127.0.0.1 is used.
// Exit status: 0 pass, 1 fail, 77 skipped (no Chromium, or chat_server is not part of the
// build), 2 usage. playwright-core comes from NODE_PATH (ctest's npm ci fixture) or
// tests/interop/node_modules.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

const SKIPPED = 77;
const host = '127.0.0.1';
const stepTimeout = 10_000; // ms for any one wait
const overallTimeout = 55_000;

function usage() {
  console.error('usage: browser_chat.mjs --scheme ws|wss --chat-server PATH [--chromium PATH] [--screenshots DIR]');
  process.exit(2);
}

const options = { scheme: '', chatServer: undefined, chromium: '/usr/bin/chromium', screenshots: '' };
for (let i = 2; i < process.argv.length; i += 2) {
  const [flag, value] = [process.argv[i], process.argv[i + 1]];
  if (value === undefined) usage();
  if (flag === '--scheme') options.scheme = value;
  else if (flag === '--chat-server') options.chatServer = value;
  else if (flag === '--chromium') options.chromium = value;
  else if (flag === '--screenshots') options.screenshots = value;
  else usage();
}
if (!['ws', 'wss'].includes(options.scheme) || options.chatServer === undefined) usage();
const secure = options.scheme === 'wss';
const httpScheme = secure ? 'https' : 'http';

function skip(why) {
  console.log(`SKIPPED: ${why}`);
  process.exit(SKIPPED);
}
if (!fs.existsSync(options.chromium)) skip(`${options.chromium} is missing (apt install chromium)`);
if (options.chatServer === '') skip('chat_server is not part of this build (it needs nlohmann/json: apt install nlohmann-json3-dev)');
if (!fs.existsSync(options.chatServer)) {
  console.log(`FAIL: ${options.chatServer} is not built`);
  process.exit(1);
}
// A CommonJS require honours NODE_PATH, where ctest's npm ci fixture put playwright-core.
const { chromium } = createRequire(import.meta.url)('playwright-core');

// ---- bookkeeping ------------------------------------------------------------------------------

let failures = 0;
function check(what, ok, detail = '') {
  if (ok) {
    console.log(`ok   ${what}`);
  } else {
    failures += 1;
    console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'duplex-browser-chat-'));
let server = null;
let serverOutput = '';
let browser = null;
const consoleLines = [];

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) server.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
}

const watchdog = setTimeout(async () => {
  console.log(`FAIL: the test took longer than ${overallTimeout / 1000} s`);
  await finish(1);
}, overallTimeout);

async function finish(status) {
  clearTimeout(watchdog);
  if (status !== 0) {
    console.log(`--- chat_server output:\n${serverOutput.slice(-4000)}`);
    if (consoleLines.length) console.log(`--- browser console:\n${consoleLines.slice(-40).join('\n')}`);
  }
  await cleanup();
  process.exit(status);
}

// ---- helpers ------------------------------------------------------------------------------------

function makeCertificate() {
  const key = path.join(work, 'key.pem');
  const cert = path.join(work, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '2',
    '-keyout', key, '-out', cert], { stdio: 'pipe' });
  return { key, cert, ca: fs.readFileSync(cert) };
}

// Starts chat_server and resolves with its port once it printed the address it listens on.
function startServer(args) {
  return new Promise((resolve, reject) => {
    server = spawn(options.chatServer, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => reject(new Error('chat_server did not print its address')), stepTimeout);
    const pattern = new RegExp(`listening on ${httpScheme}://127\\.0\\.0\\.1:(\\d+)/`);
    const onData = (chunk) => {
      serverOutput += chunk;
      const match = serverOutput.match(pattern);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    server.stdout.setEncoding('utf8').on('data', onData);
    server.stderr.setEncoding('utf8').on('data', (chunk) => { serverOutput += chunk; });
    server.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chat_server exited with ${code}`));
    });
  });
}

function waitForExit(child, ms) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => resolve(null), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

// GET over http(s), trusting the test certificate. Resolves with { status, type, body }.
function get(url, ca) {
  return new Promise((resolve, reject) => {
    const client = secure ? https : http;
    const request = client.get(url, { ca, timeout: stepTimeout }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode, type: response.headers['content-type'], body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

// Sends an upgrade request by hand and resolves with every byte the server sent until it
// closed the connection (or, for a 101, until the head is complete).
function rawUpgrade(port, target, ca) {
  return new Promise((resolve, reject) => {
    const socket = secure
      ? tls.connect({ host, port, ca, servername: 'localhost' })
      : net.connect({ host, port });
    const chunks = [];
    const timer = setTimeout(() => socket.destroy(new Error('no answer to the upgrade')), stepTimeout);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.write([`GET ${target} HTTP/1.1`, `Host: ${host}:${port}`, 'Upgrade: websocket',
        'Connection: Upgrade', `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13', `Origin: ${httpScheme}://${host}:${port}`, '', ''].join('\r\n'));
    });
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).toString('latin1').startsWith('HTTP/1.1 101') &&
          Buffer.concat(chunks).includes('\r\n\r\n')) done();
    });
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// Splits a raw HTTP response into status, head and what follows the Content-Length body.
function parseResponse(bytes) {
  const text = bytes.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  const head = headEnd < 0 ? text : text.slice(0, headEnd);
  const status = Number((head.match(/^HTTP\/1\.1 (\d{3}) /) || [])[1]);
  const length = Number((head.match(/\r\ncontent-length: *(\d+)/i) || [])[1] || 0);
  const rest = headEnd < 0 ? '' : text.slice(headEnd + 4);
  return { status, head, body: rest.slice(0, length), trailing: rest.slice(length) };
}

// ---- the test -------------------------------------------------------------------------------

async function run() {
  const started = Date.now();
  console.log(`== browser-chat-${options.scheme}: ${path.basename(options.chatServer)} and Chromium over ${options.scheme}://`);
  const token = crypto.randomBytes(12).toString('base64url');
  const serverArgs = ['--host', host, '--port', '0', '--token', token];
  let ca;
  if (secure) {
    const certificate = makeCertificate();
    ca = certificate.ca;
    serverArgs.push('--tls-cert', certificate.cert, '--tls-key', certificate.key);
  }
  const port = await startServer(serverArgs);
  const base = `${httpScheme}://${host}:${port}`;

  // Plain HTTP: the page, health, metrics.
  const page = await get(`${base}/`, ca);
  check('GET / serves the chat page', page.status === 200 && /^text\/html/.test(page.type) &&
    page.body.includes('<title>duplex chat</title>'), `${page.status} ${page.type}`);
  const health = await get(`${base}/health`, ca);
  check('GET /health answers {"status":"ok","connections":0}',
    health.status === 200 && health.body === '{"status":"ok","connections":0}', health.body);
  const metrics = await get(`${base}/metrics`, ca);
  check('GET /metrics answers Prometheus text', metrics.status === 200 &&
    metrics.body.includes('# TYPE duplex_chat_connections gauge') &&
    metrics.body.includes('duplex_chat_connections{endpoint="chat"} 0') &&
    metrics.body.includes('# TYPE duplex_chat_messages_received_total counter'), metrics.body.slice(0, 200));

  // The token is checked at the upgrade: a wrong one gets 401 and not a single frame.
  const wrong = parseResponse(await rawUpgrade(port, '/ws?name=mallory&room=lobby&token=wrong', ca));
  check('an upgrade with a wrong token gets 401 before any frame',
    wrong.status === 401 && !/sec-websocket-accept/i.test(wrong.head) && wrong.trailing === '',
    `${wrong.head.split('\r\n')[0]}, ${wrong.trailing.length} bytes after the body`);
  const missing = parseResponse(await rawUpgrade(port, '/ws?name=mallory&room=lobby', ca));
  check('an upgrade without a token gets 401', missing.status === 401, missing.head.split('\r\n')[0]);
  const noName = parseResponse(await rawUpgrade(port, `/ws?room=lobby&token=${token}`, ca));
  check('an upgrade without a name gets 400', noName.status === 400 && noName.trailing === '',
    noName.head.split('\r\n')[0]);
  const accepted = parseResponse(await rawUpgrade(port, `/ws?name=raw&room=raw&token=${token}`, ca));
  check('an upgrade with the right token gets 101', accepted.status === 101, accepted.head.split('\r\n')[0]);

  // Two users in one room.
  browser = await chromium.launch({
    executablePath: options.chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: stepTimeout * 2,
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: secure, viewport: { width: 980, height: 640 } });
  context.setDefaultTimeout(stepTimeout);
  const socketUrls = [];
  const handshakes = []; // the 101s Chromium received, as its DevTools protocol reports them
  const openPage = async (label) => {
    const p = await context.newPage();
    p.on('console', (m) => consoleLines.push(`[${label}] ${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => consoleLines.push(`[${label}] page error: ${e.message}`));
    p.on('websocket', (ws) => socketUrls.push(ws.url()));
    const devtools = await context.newCDPSession(p);
    devtools.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push(e.response));
    await devtools.send('Network.enable');
    await p.goto(`${base}/`);
    return p;
  };
  const join = async (p, name, userToken) => {
    await p.fill('#name', name);
    await p.fill('#room', 'lobby');
    await p.fill('#token', userToken);
    await p.click('#connect');
  };
  const logEntry = (p, kind, text) => p.locator(`#log .entry.${kind}`, { hasText: text });

  const alice = await openPage('alice');
  const bob = await openPage('bob');
  await join(alice, 'alice', token);
  await alice.waitForSelector('#status[data-state="connected"]');
  await logEntry(alice, 'system', 'Joined #lobby as alice').waitFor();
  await join(bob, 'bob', token);
  await bob.waitForSelector('#status[data-state="connected"]');
  check('the page builds its WebSocket URL from its location, with the token',
    socketUrls.length > 0 && socketUrls.every((u) => u.startsWith(`${options.scheme}://${host}:${port}/ws?`)) &&
    socketUrls[0].includes(`token=${token}`), socketUrls.join(' '));

  // Chromium offers permessage-deflate on every connection; chat_server accepts it by default.
  const extensionsOf = (response) => Object.entries(response.headers || {})
    .filter(([name]) => name.toLowerCase() === 'sec-websocket-extensions').map(([, v]) => v).join(', ');
  const upgrades = handshakes.filter((r) => r.status === 101);
  check('Chromium and chat_server negotiated permessage-deflate (Sec-WebSocket-Extensions in both 101s)',
    upgrades.length >= 2 && upgrades.every((r) => /^permessage-deflate(;|$)/.test(extensionsOf(r))),
    JSON.stringify(upgrades.map((r) => `${r.status} ${extensionsOf(r) || 'no extension'}`)));

  await logEntry(alice, 'presence', 'bob joined').waitFor();
  check('alice sees bob join', true);
  await bob.locator('#members li', { hasText: 'alice' }).waitFor();
  check('bob\'s member list has alice and bob', (await bob.locator('#members li').allTextContents()).join(',') === 'alice,bob');
  const healthTwo = JSON.parse((await get(`${base}/health`, ca)).body);
  check('/health counts the two connections', healthTwo.connections === 2, JSON.stringify(healthTwo));

  const hello = 'Hello from alice ✓ <b>not bold</b>';
  await alice.fill('#text', hello);
  await alice.press('#text', 'Enter');
  await logEntry(bob, 'message', hello).waitFor();
  check('bob sees alice\'s message', true);
  check('the message is shown as text, not HTML', (await bob.locator('#log b').count()) === 0);
  await logEntry(alice, 'message.mine', hello).waitFor();
  check('alice sees her own message with the server\'s timestamp', true);
  await bob.fill('#text', 'hi alice');
  await bob.click('#send');
  await logEntry(alice, 'message', 'hi alice').waitFor();
  check('alice sees bob\'s reply', true);
  await bob.click('#ping');
  await logEntry(bob, 'pong', 'round trip').waitFor();
  check('ping gets a pong', true);

  if (options.screenshots) {
    fs.mkdirSync(options.screenshots, { recursive: true });
    await bob.screenshot({ path: path.join(options.screenshots, `chat-${options.scheme}.png`) });
  }

  // Leaving, and history for whoever comes back.
  await bob.click('#disconnect');
  await bob.waitForSelector('#status[data-state="disconnected"]');
  await logEntry(alice, 'presence', 'bob left').waitFor();
  check('alice sees bob leave', (await alice.locator('#member-count').textContent()) === '1');
  await bob.click('#connect');
  await bob.waitForSelector('#status[data-state="connected"]');
  await logEntry(bob, 'message.history', hello).waitFor();
  check('bob gets the room\'s history when he rejoins', (await logEntry(bob, 'message.history', 'hi alice').count()) === 1);

  // A wrong token: the page shows the refusal and its reason.
  const mallory = await openPage('mallory');
  await join(mallory, 'mallory', 'not-the-token');
  await mallory.waitForSelector('#status[data-state="refused"]');
  const refusal = await mallory.locator('#log .entry.error').first().textContent();
  check('the page shows that a wrong token was refused', /401/.test(refusal) && /token/.test(refusal), refusal);
  if (options.screenshots)
    await mallory.screenshot({ path: path.join(options.screenshots, `chat-${options.scheme}-refused.png`) });
  check('bob and alice did not see mallory', (await logEntry(alice, 'presence', 'mallory').count()) === 0);

  // The protocol's edges, from the browser's own WebSocket.
  const edges = await protocolEdges(alice, port, token);
  check('invalid JSON, a missing "event" and an unknown event get error events',
    JSON.stringify(edges.errors) === '["invalid_json","missing_event","unknown_event"]', JSON.stringify(edges.errors));
  check('a text of 501 code points is cut to 500 and marked truncated',
    edges.cut && edges.cut.codePoints === 500 && edges.cut.truncated && edges.cut.last === 'é😀', JSON.stringify(edges.cut));
  // Counted, not timed: however slowly the 40 pings arrive (tokens come back at 10 per second),
  // the burst of 10 passes, the 11th refusal closes, and nothing is answered after the close.
  check('a flood gets pongs for the burst, rate_limited errors, then close 1008',
    edges.floodClose.code === 1008 && edges.floodPongs >= 10 && edges.floodRateErrors >= 10 &&
    edges.floodPongs + edges.floodRateErrors + 1 <= 40,
    `${edges.floodRateErrors} errors, ${edges.floodPongs} pongs, close ${JSON.stringify(edges.floodClose)}`);
  check('a message over 64 KiB closes with 1009', edges.bigClose.code === 1009, JSON.stringify(edges.bigClose));
  check('/echo echoes', edges.echo === 'echo ✓', JSON.stringify(edges.echo));
  check('the page\'s own WebSocket reports permessage-deflate (ws.extensions), on /ws and /echo',
    /^permessage-deflate(;|$)/.test(edges.extensions) && /^permessage-deflate(;|$)/.test(edges.echoExtensions),
    JSON.stringify([edges.extensions, edges.echoExtensions]));

  const after = (await get(`${base}/metrics`, ca)).body;
  const counter = (name) => Number((after.split('\n').find((line) => line.startsWith(`${name} `)) || '').split(' ')[1]);
  check('/metrics counted the traffic and the refusals',
    counter('duplex_chat_messages_received_total') >= 25 && counter('duplex_chat_messages_sent_total') > 10 &&
    counter('duplex_chat_errors_total{kind="upgrade_refused"}') >= 4 &&
    counter('duplex_chat_errors_total{kind="rate_limited"}') > 0,
    after.split('\n').filter((l) => !l.startsWith('#')).join('; '));

  // A graceful shutdown: the open pages see 1001, the server exits 0.
  server.kill('SIGTERM');
  const status = await waitForExit(server, 10_000);
  check('chat_server exits with 0 on SIGTERM', status === 0, `status ${status}`);
  await logEntry(alice, 'system', '1001').waitFor();
  check('the page shows the server going away (1001)', true);
  console.log(`== browser-chat-${options.scheme}: ${failures ? 'FAILED' : 'passed'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

// Error events, the text cap, the rate limit, the size limit and /echo, from inside the page
// (functions cannot cross into it: URLs go as strings).
async function protocolEdges(alice, port, token) {
  const chatBase = `${options.scheme}://${host}:${port}/ws?room=edges&token=${encodeURIComponent(token)}&name=`;
  return alice.evaluate(async ({ chatBase, echoUrl }) => {
    const chatUrl = (name) => chatBase + encodeURIComponent(name);
    const open = (url) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const events = [];
      ws.closed = new Promise((done) => { ws.onclose = (e) => done({ code: e.code, reason: e.reason }); });
      ws.onmessage = (e) => events.push(typeof e.data === 'string' && e.data.startsWith('{') ? JSON.parse(e.data) : e.data);
      ws.onopen = () => resolve({ ws, events });
      ws.onerror = () => reject(new Error(`cannot open ${url}`));
    });
    const until = async (events, predicate) => {
      for (let i = 0; i < 200 && !events.some(predicate); ++i) await new Promise((r) => setTimeout(r, 25));
      return events.find(predicate);
    };
    const out = {};
    const a = await open(chatUrl('edge-a'));
    await until(a.events, (e) => e.event === 'join_ack');
    a.ws.send('not json');
    a.ws.send('{"text":"no event"}');
    a.ws.send('{"event":"dance"}');
    out.extensions = a.ws.extensions;
    const errors = () => a.events.filter((e) => e.event === 'error').map((e) => e.code);
    await until(a.events, () => errors().length >= 3);
    out.errors = errors();
    a.ws.send(JSON.stringify({ event: 'message', text: 'é'.repeat(499) + '😀😀' }));
    const cut = await until(a.events, (e) => e.event === 'message');
    out.cut = cut ? { codePoints: [...cut.text].length, truncated: cut.truncated === true, last: [...cut.text].slice(-2).join('') } : null;
    a.ws.close();

    const flood = await open(chatUrl('edge-flood'));
    await until(flood.events, (e) => e.event === 'join_ack');
    for (let i = 0; i < 40; ++i) flood.ws.send('{"event":"ping"}');
    out.floodClose = await flood.ws.closed;
    out.floodRateErrors = flood.events.filter((e) => e.code === 'rate_limited').length;
    out.floodPongs = flood.events.filter((e) => e.event === 'pong').length;

    const big = await open(chatUrl('edge-big'));
    await until(big.events, (e) => e.event === 'join_ack');
    big.ws.send(JSON.stringify({ event: 'message', text: 'x'.repeat(64 * 1024) }));
    out.bigClose = await big.ws.closed;

    const echo = await open(echoUrl);
    out.echoExtensions = echo.ws.extensions;
    echo.ws.send('echo ✓');
    out.echo = (await until(echo.events, (e) => e === 'echo ✓')) || null;
    echo.ws.close();
    return out;
  }, { chatBase, echoUrl: `${options.scheme}://${host}:${port}/echo` });
}

try {
  await run();
  await finish(failures ? 1 : 0);
} catch (e) {
  console.log(`FAIL: ${e.stack || e}`);
  await finish(1);
}

// Browser test of examples/chat across processes: a real redis-server and two chat_server
// processes started with --redis, and headless Chromium (playwright-core) with alice on one
// server's page and bob on the other's, in one room.
//
//   node browser_chat_redis.mjs --chat-server PATH [--redis-server PATH] [--chromium PATH]
//
// Checks: both servers report the backplane up in /health; bob's member list has alice (from
// Redis presence) and alice sees bob join (a presence event that crossed); messages cross in
// both directions; alice sees bob leave; /metrics counts backplane publishes and deliveries.
// Only 127.0.0.1 is used. Exit status: 0 pass, 1 fail, 77 skipped (no Chromium, no
// redis-server, or chat_server is not part of the build), 2 usage.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const SKIPPED = 77;
const host = '127.0.0.1';
const stepTimeout = 15_000; // ms for any one wait
const overallTimeout = 70_000;

function usage() {
  console.error('usage: browser_chat_redis.mjs --chat-server PATH [--redis-server PATH] [--chromium PATH]');
  process.exit(2);
}

const options = { chatServer: undefined, redisServer: '/usr/bin/redis-server', chromium: '/usr/bin/chromium' };
for (let i = 2; i < process.argv.length; i += 2) {
  const [flag, value] = [process.argv[i], process.argv[i + 1]];
  if (value === undefined) usage();
  if (flag === '--chat-server') options.chatServer = value;
  else if (flag === '--redis-server') options.redisServer = value;
  else if (flag === '--chromium') options.chromium = value;
  else usage();
}
if (options.chatServer === undefined) usage();

function skip(why) {
  console.log(`SKIPPED: ${why}`);
  process.exit(SKIPPED);
}
if (!fs.existsSync(options.chromium)) skip(`${options.chromium} is missing (apt install chromium)`);
if (!fs.existsSync(options.redisServer)) skip(`${options.redisServer} is missing (apt install redis-server)`);
if (options.chatServer === '') skip('chat_server is not part of this build (it needs nlohmann/json)');
if (!fs.existsSync(options.chatServer)) {
  console.log(`FAIL: ${options.chatServer} is not built`);
  process.exit(1);
}
const { chromium } = createRequire(import.meta.url)('playwright-core');

let failures = 0;
function check(what, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${!ok && detail ? `: ${detail}` : ''}`);
  if (!ok) failures += 1;
  return ok;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'duplex-browser-chat-redis-'));
const children = [];
const outputs = new Map();
let browser = null;

async function finish(status) {
  clearTimeout(watchdog);
  if (status !== 0)
    for (const [name, text] of outputs) console.log(`--- ${name} output:\n${text.slice(-3000)}`);
  if (browser) await browser.close().catch(() => {});
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
  process.exit(status);
}

const watchdog = setTimeout(() => {
  console.log(`FAIL: the test took longer than ${overallTimeout / 1000} s`);
  finish(1);
}, overallTimeout);

// A free loopback port: bound, read, released.
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// Starts a child and resolves once `pattern` appears in its output, with the match.
function start(name, file, args, pattern) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    outputs.set(name, '');
    const timer = setTimeout(() => reject(new Error(`${name} did not start`)), stepTimeout);
    const onData = (chunk) => {
      outputs.set(name, outputs.get(name) + chunk);
      const match = outputs.get(name).match(pattern);
      if (match) {
        clearTimeout(timer);
        resolve(match);
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}`));
    });
  });
}

function get(url) {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { timeout: stepTimeout }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

const metric = (text, name) =>
  Number((text.split('\n').find((line) => line.startsWith(`${name} `)) || '').split(' ')[1]);

async function run() {
  console.log('== browser-chat-redis: two chat_server processes sharing rooms through redis-server');
  const redisPort = await freePort();
  await start('redis-server', options.redisServer,
    ['--port', String(redisPort), '--bind', host, '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--dir', work], /Ready to accept connections/);
  const url = `redis://${host}:${redisPort}/0`;
  const bases = [];
  for (const name of ['chat-a', 'chat-b']) {
    const match = await start(name, options.chatServer,
      ['--host', host, '--port', '0', '--redis', url], /listening on http:\/\/127\.0\.0\.1:(\d+)\//);
    bases.push(`http://${host}:${match[1]}`);
  }
  // Up: connected to Redis, authenticated and subscribed.
  for (const base of bases) {
    const deadline = Date.now() + stepTimeout;
    let health = {};
    while (Date.now() < deadline) {
      health = JSON.parse((await get(`${base}/health`)).body);
      if (health.backplane === 'up') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    check(`${base}/health reports the backplane up`, health.backplane === 'up', JSON.stringify(health));
  }

  browser = await chromium.launch({
    executablePath: options.chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: stepTimeout * 2,
  });
  const context = await browser.newContext({ viewport: { width: 980, height: 640 } });
  context.setDefaultTimeout(stepTimeout);
  const openPage = async (base) => {
    const p = await context.newPage();
    await p.goto(`${base}/`);
    return p;
  };
  const join = async (p, name) => {
    await p.fill('#name', name);
    await p.fill('#room', 'lobby');
    await p.click('#connect');
    await p.waitForSelector('#status[data-state="connected"]');
  };
  const logEntry = (p, kind, text) => p.locator(`#log .entry.${kind}`, { hasText: text });

  const alice = await openPage(bases[0]);
  const bob = await openPage(bases[1]);
  await join(alice, 'alice');
  await logEntry(alice, 'system', 'Joined #lobby as alice').waitFor();
  await join(bob, 'bob');
  await bob.locator('#members li', { hasText: 'alice' }).waitFor();
  check('bob, on the other server, lists alice and bob',
    (await bob.locator('#members li').allTextContents()).join(',') === 'alice,bob');
  await logEntry(alice, 'presence', 'bob joined').waitFor();
  check('alice sees bob join on the other server', true);

  await alice.fill('#text', 'hello across servers');
  await alice.press('#text', 'Enter');
  await logEntry(bob, 'message', 'hello across servers').waitFor();
  check('bob sees alice\'s message', true);
  await bob.fill('#text', 'hi from server b');
  await bob.click('#send');
  await logEntry(alice, 'message', 'hi from server b').waitFor();
  check('alice sees bob\'s reply', true);

  await bob.click('#disconnect');
  await logEntry(alice, 'presence', 'bob left').waitFor();
  check('alice sees bob leave', (await alice.locator('#member-count').textContent()) === '1');

  const metricsA = (await get(`${bases[0]}/metrics`)).body;
  check('/metrics counts backplane publishes and deliveries',
    metric(metricsA, 'duplex_chat_backplane_publishes_total') >= 1 &&
    metric(metricsA, 'duplex_chat_backplane_deliveries_total') >= 2 &&
    metric(metricsA, 'duplex_chat_backplane_up') === 1, metricsA.split('\n').filter((l) => l.includes('backplane')).join(' | '));
}

run().then(() => finish(failures === 0 ? 0 : 1), (e) => {
  console.log(`FAIL: ${e.stack || e}`);
  finish(1);
});

// The browser UI in Chromium, on a hub of its own started as a new user
// would (no key: the hub generates its secret and prints the UI's URL with
// an admin token in the fragment): the page at /, the token prompt that
// refuses a missing or non-admin token, the dashboard's counters moving
// with publishes, and the debugger's subscribe/publish/resume round trip
// and token decoder; then, on a second hub on a Redis store, the
// dashboard's panel of the cluster's nodes. Screenshots of both views at a
// laptop's and a phone's width go to docs/img/.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, freePort, sign, sleep, uniqueTopic, waitFor } from './helpers.mjs';

const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const BINARY = process.env.E2E_SSEHUB;
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'img');
const LAPTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

let hub;
let dataDir;
let origin;
let uiUrl; // with #token=...
let adminToken;
let secret;
let browser;

/** Starts `binary` with `args`, its output collected; `stop()` ends it (SIGTERM, then SIGKILL). */
function start(binary, args) {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { child, output: '' };
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (d) => { proc.output += d; });
  proc.stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, 10_000, `${binary} to stop`)
      .catch(() => child.kill('SIGKILL'));
  };
  return proc;
}

/** The UI's URL, with its admin token, that a hub started by `start` prints. */
async function uiUrlOf(proc) {
  const line = await waitFor(
    () => {
      assert.equal(proc.child.exitCode, null, `the hub exited:\n${proc.output}`);
      return proc.output.split('\n').find((l) => l.includes('#token='));
    },
    10_000,
    'the UI URL in the banner',
  );
  return line.trim();
}

before(async () => {
  assert.ok(BINARY, 'E2E_SSEHUB (the ssehub binary) is set by run.sh');
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'ssehub-e2e-ui-'));
  hub = start(BINARY, [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--tls-listen', 'none',
    '--metrics-listen', 'none',
    '--data-dir', dataDir,
  ]);
  uiUrl = await uiUrlOf(hub);
  adminToken = uiUrl.split('#token=')[1];
  secret = readFileSync(join(dataDir, 'jwt-secret'), 'utf8').trim();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A page in a fresh context (its own sessionStorage) of this size, with the requests it makes. */
async function newPage(viewport = LAPTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const requests = [];
  const errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return { page, requests, errors, close: () => context.close() };
}

/** Publishes one update with the admin token (it may publish everywhere); returns the id. */
async function publish(fields) {
  const res = await fetch(`${origin}/.well-known/mercure`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}` },
    body: new URLSearchParams(fields),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  return body;
}

const visible = (page, selector) => page.locator(selector).isVisible();

test('/ answers 200 with the version, the hub URL and the Link header', async () => {
  const version = spawnSync(BINARY, ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ')[1];
  const { page, close } = await newPage();
  const res = await page.goto(`${origin}/`);
  assert.equal(res.status(), 200);
  const hubUrl = `${origin}/.well-known/mercure`;
  assert.equal(res.headers().link, `<${hubUrl}>; rel="mercure"`);
  assert.equal(await page.locator('#version').textContent(), version);
  assert.equal(await page.locator('#hub-url').textContent(), hubUrl);
  await page.getByRole('link', { name: 'Dashboard and debugger' }).click();
  await page.waitForURL(`${origin}/.well-known/mercure/ui/`);
  await close();
});

test('without a token, or with a token that is not an admin token, the page only asks for one', async () => {
  const { page, requests, errors, close } = await newPage();
  await page.goto(`${origin}/.well-known/mercure/ui/`);
  await page.locator('#login').waitFor();
  assert.equal(await visible(page, '#dashboard'), false);
  assert.equal(await visible(page, '#debugger'), false);
  assert.ok(!requests.some((u) => u.includes('/stats') || u.includes('/.well-known/mercure?')), requests.join('\n'));

  // A valid token of this hub that may publish everything, but is no admin.
  const publisher = sign({ mercure: { publish: ['*'], subscribe: ['*'] } }, secret);
  await page.locator('#login-token').fill(publisher);
  await page.getByRole('button', { name: 'Use this token' }).click();
  await page.locator('#login-error', { hasText: '403' }).waitFor();
  assert.match(await page.locator('#login-error').textContent(), /not an admin token/);
  assert.equal(await visible(page, '#dashboard'), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');

  await page.locator('#login-token').fill('not-a-jwt');
  await page.getByRole('button', { name: 'Use this token' }).click();
  await page.locator('#login-error', { hasText: '401' }).waitFor();
  assert.equal(await visible(page, '#debugger'), false);
  assert.deepEqual(errors.filter((e) => !e.includes('status of 40')), []);
  await close();
});

test('the token of the URL fragment opens the dashboard, whose counters move with publishes', async () => {
  const { page, errors, close } = await newPage();
  await page.goto(uiUrl);
  await page.locator('#dashboard').waitFor();
  assert.ok(!page.url().includes('#'), `the fragment is cleared: ${page.url()}`);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('ssehub-admin-token')), adminToken);
  await page.locator('#live', { hasText: 'live' }).waitFor();

  const updates = async () => Number((await page.locator('#m-updates-total').textContent()).split(' ')[0].replace(/\D/g, ''));
  await page.waitForFunction(() => document.getElementById('m-updates-total').textContent !== '');
  const before = await updates();

  // A subscriber, so deliveries move too; then publishes spread over a few seconds for the charts.
  const topic = uniqueTopic('ui-dashboard');
  const sub = await fetch(`${origin}/.well-known/mercure?topic=${encodeURIComponent(topic)}`, {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  assert.equal(sub.status, 200);
  const reading = sub.body.getReader();
  const drain = (async () => { for (;;) { if ((await reading.read()).done) return; } })().catch(() => {});
  const count = 40;
  for (let i = 0; i < count; i++) {
    await publish({ topic, data: `update ${i}` });
    await sleep(100);
  }
  await page.waitForFunction(
    (want) => Number(document.getElementById('m-updates-total').textContent.replace(/\D/g, '')) >= want,
    before + count,
  );
  assert.ok((await updates()) >= before + count);
  await page.waitForFunction(() => document.getElementById('m-subscriptions').textContent !== '0');
  await page.screenshot({ path: join(SHOTS, 'ui-dashboard.png') });
  await page.setViewportSize(PHONE);
  await sleep(1200); // one more frame drawn at the new width
  await page.screenshot({ path: join(SHOTS, 'ui-dashboard-phone.png'), fullPage: true });
  await reading.cancel();
  await drain;
  assert.deepEqual(errors, []);
  await close();
});

test('the debugger subscribes, publishes, shows the event, resumes with Last-Event-ID, and decodes a token', async () => {
  const { page, errors, close } = await newPage();
  await page.goto(uiUrl);
  await page.getByRole('tab', { name: 'Debugger' }).click();
  const topic = uniqueTopic('ui-debugger');

  await page.locator('#sub-kind').selectOption('topic');
  await page.locator('#sub-selectors').fill(topic);
  await page.getByRole('button', { name: 'Subscribe', exact: true }).click();
  await page.locator('#sub-status', { hasText: 'Subscribed' }).waitFor();

  await page.locator('#pub-topics').fill(topic);
  await page.locator('#pub-data').fill('hello from the debugger');
  await page.locator('#pub-type').fill('greeting');
  await page.locator('#pub-id').fill('urn:e2e:ui-1');
  await page.getByRole('button', { name: 'Publish' }).click();
  await page.locator('#pub-result', { hasText: 'Published: urn:e2e:ui-1' }).waitFor();
  const row = page.locator('#events tbody tr', { hasText: 'hello from the debugger' });
  await row.waitFor();
  assert.deepEqual(await row.locator('td').allTextContents().then((c) => c.slice(1)), [
    'urn:e2e:ui-1',
    'greeting',
    'hello from the debugger',
  ]);

  // Disconnected, an update is missed; reconnecting with the last id replays it.
  await page.getByRole('button', { name: 'Disconnect' }).click();
  await page.locator('#sub-status', { hasText: 'Disconnected' }).waitFor();
  const missed = await publish({ topic, data: 'published while away' });
  await page.getByRole('button', { name: 'Reconnect from last id' }).click();
  await page.locator('#sub-status', { hasText: 'after urn:e2e:ui-1' }).waitFor();
  const replayed = page.locator('#events tbody tr', { hasText: 'published while away' });
  await replayed.waitFor();
  assert.equal(await replayed.locator('td').nth(1).textContent(), missed);

  // Decoded in the page: no request carries it anywhere.
  const requestsBefore = [];
  page.on('request', (r) => requestsBefore.push(r.url()));
  await page.locator('#jwt-input').fill(adminToken);
  await page.getByRole('button', { name: 'Decode' }).click();
  await page.locator('#jwt-expiry', { hasText: 'Expires' }).waitFor();
  assert.match(await page.locator('#jwt-expiry').textContent(), /admin claim/);
  assert.match(await page.locator('#jwt-output').textContent(), /"admin": true/);
  assert.ok(!requestsBefore.some((u) => u.includes('/.well-known/mercure?') || u.includes('decode')), requestsBefore.join('\n'));

  await page.locator('#jwt-input').fill(''); // the decoded claims stay; the token is not pictured
  await page.screenshot({ path: join(SHOTS, 'ui-debugger.png'), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: join(SHOTS, 'ui-debugger-phone.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await close();
});

test('on a Redis store, the dashboard lists the nodes of the cluster, this one marked', async () => {
  const redisPort = await freePort();
  const hubPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-e2e-ui-redis-'));
  const redis = start(process.env.REDIS_SERVER || 'redis-server', [
    '--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no',
  ]);
  const node = start(BINARY, [
    'serve',
    '--listen', `127.0.0.1:${hubPort}`,
    '--tls-listen', 'none',
    '--metrics-listen', 'none',
    '--data-dir', dir,
    '--store', `redis://127.0.0.1:${redisPort}`,
    '--redis-stream', 'e2e-ui',
  ]);
  const { page, errors, close } = await newPage();
  try {
    await page.goto(await uiUrlOf(node));
    await page.locator('#nodes-panel').waitFor();
    const row = page.locator('#nodes tbody tr.this', { hasText: '(this node)' });
    await row.waitFor();
    assert.match(await row.locator('td').first().textContent(), /^[0-9a-f]{16} \(this node\)$/);
    assert.match(await row.locator('td').nth(2).textContent(), /^\d+\.\d s$/);
    assert.equal(await page.locator('#nodes-count').textContent(), '(1 live)');
    assert.ok(await visible(page, '#card-redis'));
    assert.deepEqual(errors, []);
  } finally {
    await close();
    await node.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Compressed streams in real clients: Chromium's EventSource over HTTPS
// (HTTP/2 and HTTP/3) with zstd (what Chromium's own Accept-Encoding gets
// over HTTPS: "gzip, deflate, br, zstd") and with gzip (Accept-Encoding
// forced by the DevTools protocol), and the npm `eventsource` package
// (fetch, whose undici decodes gzip) on the suite's plain hub. Every update
// must arrive intact, in order, replay then live, across heartbeats; the
// response's Content-Encoding and protocol are read from the network stack,
// so a stream that was not compressed fails the test.
//
// This file starts its own hub with HTTPS and HTTP/3 (the suite's hub is
// plain HTTP, where Chromium asks for gzip and deflate only).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { chromium } from 'playwright-core';

import {
  CHROMIUM_ARGS,
  SECRET,
  freePort,
  publish,
  sleep,
  uniqueTopic,
  waitFor,
} from './helpers.mjs';

const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const BINARY = process.env.E2E_SSEHUB;
/** Updates published before the stream opens (replayed), then after it. */
const BEFORE = 30;
const AFTER = 170;

let hub;
let dataDir;
let plainPort;
let tlsPort;
let spki;

/** About 1 KiB of JSON, different for every update. */
function payload(i) {
  const items = Array.from({ length: 6 }, (_, k) => ({
    id: i * 10 + k,
    name: `item ${k} of update ${i}`,
    price: ((i * 37 + k * 11) % 1000) / 10,
    tags: ['alpha', 'beta', k % 2 ? 'odd' : 'even'],
  }));
  return JSON.stringify({ update: i, at: `2026-12-02T04:${String(i % 60).padStart(2, '0')}:00Z`, items });
}

before(async () => {
  assert.ok(BINARY, 'E2E_SSEHUB (the ssehub binary) is set by run.sh');
  plainPort = await freePort();
  tlsPort = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'ssehub-e2e-compression-'));
  const child = spawn(
    BINARY,
    [
      'serve',
      '--listen', `127.0.0.1:${plainPort}`,
      '--tls-listen', `127.0.0.1:${tlsPort}`,
      '--metrics-listen', 'none',
      '--data-dir', dataDir,
      '--anonymous',
      '--publisher-jwt-key', SECRET,
      '--heartbeat', '100ms',
      '--compression', 'on',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  hub = { child, output: '' };
  for (const s of [child.stdout, child.stderr]) s.on('data', (d) => { hub.output += d; });
  spki = await waitFor(
    () => {
      assert.equal(child.exitCode, null, `the hub exited:\n${hub.output}`);
      return /SPKI SHA-256 \(base64\) ([A-Za-z0-9+/=]+)/.exec(hub.output)?.[1];
    },
    10_000,
    "the hub's SPKI line",
  );
  await waitFor(async () => (await fetch(`http://127.0.0.1:${plainPort}/readyz`).catch(() => null))?.ok, 10_000, 'readyz');
});

after(async () => {
  if (hub && hub.child.exitCode === null) {
    hub.child.kill('SIGTERM');
    await waitFor(() => hub.child.exitCode !== null || hub.child.signalCode !== null, 10_000, 'the hub to stop')
      .catch(() => hub.child.kill('SIGKILL'));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Publishes update `i` of `topic` to this file's hub; returns its id. */
const publishHere = (topic, i) =>
  publish({ topic, data: payload(i) }, undefined, `http://127.0.0.1:${plainPort}/.well-known/mercure`);

/**
 * In Chromium launched with `args`, one EventSource on the hub's HTTPS
 * origin receives BEFORE replayed and AFTER live updates; `encoding` is
 * forced with Accept-Encoding unless it is what Chromium asks for itself.
 */
async function browserStream({ args, protocol, encoding, force }) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...CHROMIUM_ARGS,
      ...args,
      `--ignore-certificate-errors-spki-list=${spki}`,
      '--host-resolver-rules=MAP localhost 127.0.0.1',
    ],
    timeout: 30_000,
  });
  try {
    const context = await browser.newContext();
    if (force) await context.setExtraHTTPHeaders({ 'accept-encoding': encoding });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const origin = `https://localhost:${tlsPort}`;
    await page.goto(`${origin}/healthz`);
    const cdp = await context.newCDPSession(page);
    const responses = [];
    cdp.on('Network.responseReceived', ({ type, response }) => {
      if (type === 'EventSource') responses.push(response);
    });
    await cdp.send('Network.enable');

    const topic = uniqueTopic(`compressed-${protocol}-${encoding}`);
    const ids = [];
    for (let i = 0; i < BEFORE; i++) ids.push(await publishHere(topic, i));
    const url = `/.well-known/mercure?${new URLSearchParams({ topic, lastEventID: 'earliest' })}`;
    await page.evaluate((u) => {
      window.got = [];
      window.errors = 0;
      const es = new EventSource(u);
      es.onmessage = (e) => window.got.push({ id: e.lastEventId, data: e.data });
      es.onerror = () => { window.errors++; };
    }, url);
    const count = () => page.evaluate(() => window.got.length);
    await waitFor(async () => (await count()) >= BEFORE, 10_000, 'the replay');
    for (let i = BEFORE; i < BEFORE + AFTER; i++) {
      ids.push(await publishHere(topic, i));
      // Heartbeats (every 100 ms) between updates now and then.
      if (i % 40 === 0) await sleep(250);
    }
    await waitFor(async () => (await count()) >= ids.length, 15_000, 'every update');
    await sleep(300);
    const { got, errors } = await page.evaluate(() => ({ got: window.got, errors: window.errors }));
    const name = `${protocol} ${encoding}`;
    assert.equal(errors, 0, `${name}: no error event (a decoding error would end the stream)`);
    assert.equal(got.length, ids.length, `${name}: exactly every update`);
    got.forEach((m, i) => {
      assert.equal(m.id, ids[i], `${name}: update ${i} in order`);
      assert.equal(m.data, payload(i), `${name}: update ${i} intact`);
    });
    assert.equal(responses.length, 1, `${name}: one EventSource response`);
    const [res] = responses;
    const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(res.protocol, protocol, `${name}: protocol`);
    assert.equal(headers['content-encoding'], encoding, `${name}: Content-Encoding`);
    assert.match(headers.vary ?? '', /accept-encoding/i, `${name}: Vary`);
    console.log(`${name}: ${got.length} updates intact (${BEFORE} replayed), Content-Encoding ${encoding} over ${res.protocol}`);
  } finally {
    await browser.close();
  }
}

describe("Chromium's EventSource over HTTPS, compressed", () => {
  const h2 = { args: ['--disable-quic'], protocol: 'h2' };
  const h3 = () => ({
    args: ['--enable-quic', `--origin-to-force-quic-on=localhost:${tlsPort}`],
    protocol: 'h3',
  });
  test('HTTP/2, zstd (Chromium asks for it)', () => browserStream({ ...h2, encoding: 'zstd', force: false }));
  test('HTTP/2, gzip', () => browserStream({ ...h2, encoding: 'gzip', force: true }));
  test('HTTP/3, zstd (Chromium asks for it)', () => browserStream({ ...h3(), encoding: 'zstd', force: false }));
  test('HTTP/3, gzip', () => browserStream({ ...h3(), encoding: 'gzip', force: true }));
});

test('npm eventsource (fetch) decodes what it asks for: gzip on plain HTTP', async () => {
  const topic = uniqueTopic('eventsource-compressed');
  const hubUrl = `http://127.0.0.1:${plainPort}/.well-known/mercure`;
  const ids = [];
  for (let i = 0; i < BEFORE; i++) ids.push(await publishHere(topic, i));
  let encoding;
  const es = new EventSource(`${hubUrl}?${new URLSearchParams({ topic, lastEventID: 'earliest' })}`, {
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      encoding = res.headers.get('content-encoding');
      return res;
    },
  });
  const got = [];
  es.onmessage = (e) => got.push({ id: e.lastEventId, data: e.data });
  try {
    await waitFor(() => got.length >= BEFORE, 10_000, 'the replay');
    for (let i = BEFORE; i < BEFORE + AFTER; i++) ids.push(await publishHere(topic, i));
    await waitFor(() => got.length >= ids.length, 10_000, 'every update');
    await sleep(200);
    assert.equal(encoding, 'gzip', "undici's fetch asks for gzip and decodes it");
    assert.equal(got.length, ids.length);
    got.forEach((m, i) => {
      assert.equal(m.id, ids[i]);
      assert.equal(m.data, payload(i));
    });
  } finally {
    es.close();
  }
  // Asking for nothing gets nothing compressed.
  const res = await fetch(`${hubUrl}?topic=${encodeURIComponent(topic)}`, {
    headers: { 'accept-encoding': 'identity' },
    signal: AbortSignal.timeout(5_000),
  });
  assert.equal(res.headers.get('content-encoding'), null);
  await res.body.cancel();
});

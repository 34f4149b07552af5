// A real browser: Debian's Chromium driven by playwright-core opens a page
// served from another loopback origin, whose EventSource (withCredentials
// false, so CORS applies) subscribes to the hub while node publishes.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import {
  CHROMIUM_ARGS,
  HUB,
  TRICKY,
  normalized,
  publish,
  subscribeUrl,
  subscriberToken,
  uniqueTopic,
} from './helpers.mjs';

const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
/** run.sh allows this port's origin with --cors-origins. */
const PAGE_PORT = Number(process.env.E2E_PAGE_PORT);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>ssehub e2e</title></head>
<body>
<script>
  // Opens an EventSource and records what it dispatches, for the test to read.
  window.sources = [];
  window.subscribe = (url, types) => new Promise((resolve) => {
    const es = new EventSource(url, { withCredentials: false });
    const record = { es, events: [], errors: 0, opened: false };
    window.sources.push(record);
    const keep = (e) => record.events.push({ type: e.type, data: e.data, lastEventId: e.lastEventId, origin: e.origin });
    es.onmessage = keep;
    for (const t of types) es.addEventListener(t, keep);
    es.onopen = () => { record.opened = true; resolve({ index: window.sources.length - 1, opened: true }); };
    es.onerror = () => {
      record.errors++;
      if (!record.opened) { es.close(); resolve({ index: window.sources.length - 1, opened: false, readyState: es.readyState }); }
    };
  });
</script>
</body></html>`;

let browser;
let pageOrigin;
const servers = [];

function servePage(port) {
  const server = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

before(async () => {
  assert.ok(PAGE_PORT > 0, 'E2E_PAGE_PORT is set by run.sh');
  pageOrigin = await servePage(PAGE_PORT);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.close();
});

/** A fresh page of `origin` with the recording script loaded. */
async function openPage(origin) {
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  await page.goto(`${origin}/`);
  return { page, logs };
}

test('Chromium EventSource receives tricky payloads across origins exactly', async () => {
  const { page, logs } = await openPage(pageOrigin);
  const topic = uniqueTopic('browser');
  const types = TRICKY.map((_, i) => `kind-${i}`);
  const opened = await page.evaluate(([url, types]) => window.subscribe(url, types), [
    subscribeUrl(topic),
    types,
  ]);
  assert.equal(opened.opened, true, `EventSource opened (console: ${logs.join(' | ')})`);

  const sent = [];
  for (const [i, { name, data }] of TRICKY.entries()) {
    const type = i % 3 === 1 ? types[i] : undefined;
    const id = i % 4 === 2 ? `custom-id-${i}` : undefined;
    const answered = await publish({ topic, data, type, id });
    if (id) assert.equal(answered, id);
    sent.push({ name, data: normalized(data), type: type ?? 'message', lastEventId: answered });
  }
  await page.waitForFunction((n) => window.sources[0].events.length >= n, sent.length);
  await page.waitForTimeout(100);
  const got = await page.evaluate(() => window.sources[0].events);
  assert.equal(got.length, sent.length, 'no extra events');
  sent.forEach((want, i) => {
    assert.deepEqual(
      { type: got[i].type, data: got[i].data, lastEventId: got[i].lastEventId },
      { type: want.type, data: want.data, lastEventId: want.lastEventId },
      `event "${want.name}"`,
    );
    assert.equal(got[i].origin, HUB, 'MessageEvent.origin is the hub');
  });
  const errors = await page.evaluate(() => window.sources[0].errors);
  assert.equal(errors, 0, 'no error events');
  await page.close();
});

test('Chromium receives private updates with a token in the authorization query parameter', async () => {
  const { page } = await openPage(pageOrigin);
  const topic = uniqueTopic('browser-private');
  const url = subscribeUrl(topic, { authorization: subscriberToken([topic]) });
  const opened = await page.evaluate(([u]) => window.subscribe(u, []), [url]);
  assert.equal(opened.opened, true);
  const id = await publish({ topic, data: 'for your eyes\r\nonly', private: true });
  await page.waitForFunction(() => window.sources[0].events.length >= 1);
  const [event] = await page.evaluate(() => window.sources[0].events);
  assert.deepEqual(
    { type: event.type, data: event.data, lastEventId: event.lastEventId },
    { type: 'message', data: 'for your eyes\nonly', lastEventId: id },
  );
  await page.close();
});

test('a page of an origin missing from --cors-origins cannot subscribe', async () => {
  const elsewhere = await servePage(0);
  const { page } = await openPage(elsewhere);
  const result = await page.evaluate(([u]) => window.subscribe(u, []), [
    subscribeUrl(uniqueTopic('browser-cors')),
  ]);
  assert.equal(result.opened, false, 'CORS blocks the stream');
  assert.equal(result.readyState, 2, 'the EventSource is closed');
  await page.close();
});

// A real browser: Debian's Chromium driven by playwright-core opens a page
// served from another loopback origin, whose EventSource (CORS applies)
// subscribes to the hub while node publishes: 0.x with withCredentials false,
// 1.0 with the access token in a cookie (withCredentials true).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import {
  CHROMIUM_ARGS,
  HUB,
  HUB_URL,
  TRICKY,
  accessToken,
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
  window.subscribe = (url, types, withCredentials = false) => new Promise((resolve) => {
    const es = new EventSource(url, { withCredentials });
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

/** RFC 6570 simple expansion of one value: all but unreserved characters encoded. */
const segment = (value) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

test('Chromium: a Mercure 1.0 EventSource with the access token cookie gets its URL pattern and subscription events', async () => {
  const { page, logs } = await openPage(pageOrigin);
  const pattern = 'https://example.com/books/:id';
  // Relative to the hub URL, like the topics of subscription events.
  const namespace = '/.well-known/mercure/subscriptions/urlpattern/*';
  const payload = { user: 'https://example.com/users/alice' };
  const token = await accessToken({
    subscribe: [
      { match: 'https://example.com/*', match_type: 'urlpattern' },
      { match: '/.well-known/mercure/subscriptions/*', match_type: 'urlpattern' },
    ],
    payload,
  });
  // run.sh names the cookie mercure_access_token (--access-token-cookie):
  // Chromium refuses __Secure- cookies, the default name, for plain http
  // origins such as this hub's, whether set by the page, by the hub or here.
  await page.context().addCookies([{ name: 'mercure_access_token', value: token, url: HUB }]);
  const open = (match, credentials, types = []) =>
    page.evaluate(([u, t, c]) => window.subscribe(u, t, c), [
      `${HUB_URL}?match_urlpattern=${encodeURIComponent(match)}`,
      types,
      credentials,
    ]);

  const watcher = await open(namespace, true, ['mercure']);
  const books = await open(pattern, true);
  // Without credentials: no cookie, so an anonymous subscriber.
  const anonymous = await open(pattern, false);
  for (const s of [watcher, books, anonymous]) {
    assert.equal(s.opened, true, `EventSource opened (console: ${logs.join(' | ')})`);
  }

  const publisher = await accessToken({ publish: [{ match: 'https://example.com/*', match_type: 'urlpattern' }] });
  const sent = [];
  for (const [topic, isPrivate] of [
    ['https://example.com/books/1', true],
    ['https://example.com/authors/1', true],
    ['https://example.com/books/2', true],
    ['https://example.com/books/3', false],
  ]) {
    const data = `${isPrivate ? 'private' : 'public'} ${topic}`;
    sent.push([data, await publish({ topic, data, private: isPrivate }, publisher)]);
  }
  const events = (i) => page.evaluate((n) => window.sources[n].events, i);
  await page.waitForFunction(([b, a]) => window.sources[b].events.length >= 3 && window.sources[a].events.length >= 1, [
    books.index,
    anonymous.index,
  ]);
  await page.waitForTimeout(200);
  const got = (list) => list.map((e) => [e.type, e.data, e.lastEventId]);
  const [b1, , b2, b3] = sent.map(([data, id]) => ['message', data, id]);
  assert.deepEqual(got(await events(books.index)), [b1, b2, b3], 'books in order, no author');
  assert.deepEqual(got(await events(anonymous.index)), [b3], 'the public update only');

  // The watcher saw both subscriptions to the pattern, as `mercure` events:
  // the cookie's with the token's payload, the anonymous one without.
  const subscriptionEvents = async () =>
    (await events(watcher.index)).map((e) => ({ type: e.type, doc: JSON.parse(e.data) }));
  await page.waitForFunction(
    ([w, p]) => window.sources[w].events.filter((e) => JSON.parse(e.data).match === p).length >= 2,
    [watcher.index, pattern],
  );
  const announced = (await subscriptionEvents()).filter((e) => e.doc.match === pattern);
  assert.ok(announced.every((e) => e.type === 'mercure'), 'event: mercure');
  const withToken = announced.find((e) => e.doc.payload !== undefined)?.doc;
  const withoutToken = announced.find((e) => e.doc.payload === undefined)?.doc;
  assert.ok(withToken && withoutToken, JSON.stringify(announced));
  assert.notEqual(withToken.subscriber, withoutToken.subscriber);
  for (const [doc, extra] of [[withToken, { payload }], [withoutToken, {}]]) {
    assert.deepEqual(doc, {
      id: `/.well-known/mercure/subscriptions/urlpattern/${segment(pattern)}/${segment(doc.subscriber)}`,
      type: 'subscription',
      match_type: 'urlpattern',
      match: pattern,
      subscriber: doc.subscriber,
      active: true,
      ...extra,
    });
  }

  // Closing the EventSource ends the subscription.
  await page.evaluate((i) => window.sources[i].es.close(), books.index);
  await page.waitForFunction(
    ([w, s]) =>
      window.sources[w].events.some((e) => {
        const doc = JSON.parse(e.data);
        return doc.subscriber === s && doc.active === false;
      }),
    [watcher.index, withToken.subscriber],
  );
  const ended = (await subscriptionEvents()).find((e) => e.doc.subscriber === withToken.subscriber && !e.doc.active);
  assert.deepEqual(ended, { type: 'mercure', doc: { ...withToken, active: false } });
  await page.close();
});

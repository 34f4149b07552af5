// The client in Chromium against a real hub: pages of one origin share one
// stream (counted by the hub's metrics), over plain HTTP/1.1 and over HTTPS
// with HTTP/2; the leader page closes under continuous publishing; tokens
// expire every few seconds under continuous publishing; random bytes go
// round trip; the hub is found through its Link header.
//
// Run by clients/js/test.sh (SSEHUB_BIN: the release binary; CHROMIUM:
// Debian's chromium).

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import { freePorts, sign, startHub } from './hub.mjs';

const BINARY = process.env.SSEHUB_BIN;
if (!BINARY) throw new Error('SSEHUB_BIN is not set: run clients/js/test.sh');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DIST = new URL('../dist/', import.meta.url);
const TABS = 10;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with `check()` once truthy; throws after `ms` naming `what`. */
async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>ssehub client</title></head><body>
<script>
  // ?nolocks: a browser without Web Locks, so the pages elect by heartbeats.
  if (location.search.includes('nolocks')) Object.defineProperty(navigator, 'locks', { value: undefined });
</script>
<script type="module">
  import * as ssehub from '/dist/index.js';
  window.ssehub = ssehub;
  window.log = { events: {}, states: [], tokens: 0, lost: 0 };
  // Subscribes as the test says and records what each subscription receives.
  window.start = (o) => {
    window.hub = o.hub;
    const options = {
      hub: o.hub,
      protocol: o.protocol,
      lastEventId: o.lastEventId,
      onState: (s) => log.states.push(s),
      onLost: () => log.lost++,
    };
    if (o.tokenTtl) {
      options.token = async () => {
        log.tokens++;
        const url = '/token?ttl=' + o.tokenTtl + '&topics=' + encodeURIComponent(JSON.stringify(o.grants));
        return (await fetch(url)).text();
      };
    }
    for (const [name, selectors] of Object.entries(o.subscriptions)) {
      log.events[name] = [];
      ssehub.subscribe(selectors, (e) => log.events[name].push({
        id: e.id,
        data: typeof e.data === 'string' ? e.data : { bytes: Array.from(e.data) },
        matched: e.matched,
      }), options);
    }
  };
  window.leading = () => ssehub.client({ hub: window.hub }).leader;
  window.lastState = () => log.states[log.states.length - 1];
  window.ready = true;
</script>
</body></html>`;

let hub;
let browser;
let pageServer;
let pageOrigin;

before(async () => {
  const [pagePort] = await freePorts(1);
  pageOrigin = `http://127.0.0.1:${pagePort}`;
  hub = await startHub(BINARY, pageOrigin);
  pageServer = createServer((req, res) => {
    const url = new URL(req.url, pageOrigin);
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (/^\/dist\/[\w.-]+\.js$/.test(url.pathname)) {
      const body = readFileSync(new URL(url.pathname.slice('/dist/'.length), DIST));
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(body);
    } else if (url.pathname === '/token') {
      // A subscriber token living `ttl` seconds, as an application would mint it.
      const exp = Math.floor(Date.now() / 1000) + Number(url.searchParams.get('ttl'));
      const subscribe = JSON.parse(url.searchParams.get('topics'));
      res.writeHead(200, { 'content-type': 'text/plain' }).end(sign({ exp, mercure: { subscribe } }, hub.secret));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => pageServer.listen(pagePort, '127.0.0.1', ok));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...CHROMIUM_ARGS,
      `--ignore-certificate-errors-spki-list=${hub.spki}`,
      '--host-resolver-rules=MAP localhost 127.0.0.1',
    ],
    timeout: 60_000,
  });
});

after(async () => {
  await browser?.close();
  pageServer?.close();
  await hub?.stop();
});

/** Publishes `fields` (form) to the hub's plain port; resolves with the id. */
async function publish(fields) {
  const body = new URLSearchParams(fields);
  const res = await fetch(hub.plain, { method: 'POST', headers: { authorization: `Bearer ${hub.publisher}` }, body });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return text;
}

/** Publishes to `topic` every `every` ms until stopped; the ids in order. */
function publishing(topic, every) {
  const ids = [];
  let running = true;
  const done = (async () => {
    for (let n = 0; running; n++) {
      ids.push(await publish({ topic, data: JSON.stringify({ topic, n }) }));
      await sleep(every);
    }
  })();
  return { ids, stop: async () => { running = false; await done; } };
}

async function openPages(context, count, query = '') {
  const pages = [];
  for (let i = 0; i < count; i++) {
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${pageOrigin}/${query}`);
    await page.waitForFunction(() => window.ready === true);
    pages.push(page);
  }
  return pages;
}

const ids = (page, name) => page.evaluate((n) => window.log.events[n].map((e) => e.id), name);

async function totalSubscriptions() {
  const counts = await hub.subscriptions();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/**
 * `count` pages subscribe to a topic they all share, one of their own, a
 * template (0.x) or URL pattern (1.0) matching every page's own, and one
 * of two templates or patterns (by the page's parity); one stream on the
 * hub carries them, and each subscription receives only the events of its
 * own selectors (routed by the hub's `matched:` lines, relayed with the
 * events to the other pages); then the leader closes under publishing;
 * then one page publishes random bytes. `locks: false` hides Web Locks.
 */
async function sharedPages(hubUrl, protocol, wire, { count = TABS, locks = true } = {}) {
  const context = await browser.newContext();
  try {
    const run = randomUUID();
    const all = `https://example.com/js/${run}/all`;
    const own = (i) => `https://example.com/js/${run}/tab/${i}`;
    const family = protocol === 0 ? `https://example.com/js/${run}/tab/{n}` : { pattern: `https://example.com/js/${run}/tab/:n` };
    const halfTopic = (h) => `https://example.com/js/${run}/half/${h}/x`;
    const half = (h) => (protocol === 0 ? `https://example.com/js/${run}/half/${h}/{n}` : { pattern: `https://example.com/js/${run}/half/${h}/:n` });
    const pages = await openPages(context, count, locks ? '' : '?nolocks');
    assert.equal(await pages[0].evaluate(() => typeof navigator.locks), locks ? 'object' : 'undefined');
    for (const [i, page] of pages.entries()) {
      await page.evaluate((o) => window.start(o), {
        hub: hubUrl,
        protocol,
        subscriptions: { all: [all], own: [own(i)], family: [family], half: [half(i % 2)] },
      });
    }
    await waitFor(async () => (await Promise.all(pages.map((p) => p.evaluate(() => window.lastState())))).every((s) => s === 'open'), 20_000, 'every page open');
    // One stream on the hub, over the expected protocol.
    await waitFor(async () => (await totalSubscriptions()) === 1, 15_000, 'one subscription on the hub');
    assert.equal((await hub.subscriptions())[wire], 1);

    // Every page receives every shared update, and only its own of the rest.
    const first = [];
    for (let n = 0; n < 20; n++) first.push(await publish({ topic: all, data: JSON.stringify({ topic: all, n }) }));
    const ownIds = [];
    for (let i = 0; i < count; i++) ownIds.push(await publish({ topic: own(i), data: JSON.stringify({ topic: own(i) }) }));
    const halfIds = [];
    for (const h of [0, 1]) halfIds.push(await publish({ topic: halfTopic(h), data: JSON.stringify({ topic: halfTopic(h) }) }));
    for (const [i, page] of pages.entries()) {
      await waitFor(async () => (await ids(page, 'all')).length >= first.length && (await ids(page, 'half')).length >= 1, 15_000, `page ${i}'s updates`);
    }
    await sleep(300);
    const text = (selector) => (typeof selector === 'string' ? selector : selector.pattern);
    const named = (page, name) => page.evaluate((n) => window.log.events[n].map((e) => e.matched), name);
    for (const [i, page] of pages.entries()) {
      const kind = protocol ? 'URL pattern' : 'template';
      assert.deepEqual(await ids(page, 'all'), first, `page ${i}: shared updates`);
      assert.deepEqual(await ids(page, 'own'), [ownIds[i]], `page ${i}: its own update only`);
      assert.deepEqual(await ids(page, 'family'), ownIds, `page ${i}: every page's own, by ${kind}`);
      assert.deepEqual(await ids(page, 'half'), [halfIds[i % 2]], `page ${i}: only its own ${kind}'s update`);
      assert.deepEqual(await named(page, 'own'), [[own(i)]], `page ${i}: the hub named its selector`);
      assert.deepEqual(await named(page, 'half'), [[half(i % 2)]], `page ${i}: the hub named its ${kind}`);
      assert.ok((await named(page, 'family')).every((m) => m.length === 1 && text(m[0]) === text(family)));
    }
    assert.equal(await totalSubscriptions(), 1);

    // The leader closes while updates keep coming: another page takes over.
    const leaders = [];
    for (const [i, page] of pages.entries()) if (await page.evaluate(() => window.leading())) leaders.push(i);
    assert.equal(leaders.length, 1, `one leader, got ${leaders}`);
    const pub = publishing(all, 20);
    await sleep(700);
    await pages[leaders[0]].close({ runBeforeUnload: false });
    const rest = pages.filter((_, i) => i !== leaders[0]);
    await sleep(3000);
    await pub.stop();
    const want = [...first, ...pub.ids];
    for (const [i, page] of rest.entries()) {
      await waitFor(async () => (await ids(page, 'all')).length >= want.length, 20_000, `page ${i}: every update after the takeover`);
    }
    await sleep(300);
    for (const [i, page] of rest.entries()) {
      assert.deepEqual(await ids(page, 'all'), want, `page ${i}: nothing lost or twice across the takeover`);
    }
    const newLeaders = [];
    for (const page of rest) if (await page.evaluate(() => window.leading())) newLeaders.push(page);
    assert.equal(newLeaders.length, 1);
    await waitFor(async () => (await totalSubscriptions()) === 1, 15_000, 'one subscription after the takeover');
    assert.equal((await hub.subscriptions())[wire], 1);

    // Random bytes published by a page arrive as the same bytes in every page.
    const bytes = [...randomBytes(16 * 1024)];
    const id = await rest[rest.length - 1].evaluate(
      ([url, topic, token, b]) => window.ssehub.publish(url, { topic, data: Uint8Array.from(b) }, { token }),
      [hubUrl, all, hub.publisher, bytes],
    );
    for (const [i, page] of rest.entries()) {
      const got = await waitFor(
        () => page.evaluate((id) => window.log.events.all.find((e) => e.id === id), id),
        15_000,
        `page ${i}: the binary update`,
      );
      assert.deepEqual(got.data, { bytes }, `page ${i}: the bytes`);
    }
  } finally {
    await context.close();
  }
}

test('10 pages over HTTP/1.1 (Mercure 0.x topic=): one stream, every update, leader takeover, bytes', { timeout: 180_000 }, async () => {
  await sharedPages(hub.plain, 0, 'h1');
});

test('10 pages over HTTPS and HTTP/2 (Mercure 1.0 match=): one stream, every update, leader takeover, bytes', { timeout: 180_000 }, async () => {
  await sharedPages(hub.tls, 1, 'h2');
});

test('4 pages without Web Locks (heartbeat election) over HTTP/1.1: one stream, every update, leader takeover, bytes', { timeout: 180_000 }, async () => {
  await sharedPages(hub.plain, 1, 'h1', { count: 4, locks: false });
});

test('a stored cursor the hub no longer knows: the app is told, the history replayed', { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const topic = `https://example.com/js/${randomUUID()}/lost`;
    const published = [];
    for (let n = 0; n < 3; n++) published.push(await publish({ topic, data: JSON.stringify({ topic, n }) }));
    const [page] = await openPages(context, 1);
    await page.evaluate((o) => window.start(o), {
      hub: hub.plain,
      protocol: 1,
      lastEventId: `urn:uuid:${randomUUID()}`,
      subscriptions: { all: [topic] },
    });
    await waitFor(async () => (await ids(page, 'all')).length >= 3, 15_000, 'the replay');
    assert.deepEqual(await ids(page, 'all'), published);
    assert.equal(await page.evaluate(() => window.log.lost), 1);
  } finally {
    await context.close();
  }
});

test('tokens expiring every 3 s under continuous publishing: no gap, no duplicate, never seen reconnecting', { timeout: 120_000 }, async () => {
  const context = await browser.newContext();
  try {
    const topic = `https://example.com/js/${randomUUID()}/tokens`;
    const pages = await openPages(context, 3);
    for (const page of pages) {
      await page.evaluate((o) => window.start(o), {
        hub: hub.plain,
        protocol: 1,
        tokenTtl: 3,
        grants: [topic],
        subscriptions: { all: [topic] },
      });
    }
    await waitFor(async () => (await Promise.all(pages.map((p) => p.evaluate(() => window.lastState())))).every((s) => s === 'open'), 20_000, 'every page open');
    const pub = publishing(topic, 25);
    await sleep(10_000);
    await pub.stop();
    for (const [i, page] of pages.entries()) {
      await waitFor(async () => (await ids(page, 'all')).length >= pub.ids.length, 15_000, `page ${i}: every update`);
    }
    await sleep(300);
    let tokens = 0;
    for (const [i, page] of pages.entries()) {
      assert.deepEqual(await ids(page, 'all'), pub.ids, `page ${i}: no gap, no duplicate`);
      const log = await page.evaluate(() => window.log);
      // Open once, then never anything else: the renewals were invisible.
      assert.deepEqual(log.states.slice(log.states.indexOf('open')), ['open'], `page ${i}: states ${log.states}`);
      tokens += log.tokens;
    }
    // 10 s of 3-second tokens: at least 4 renewals by the leader.
    assert.ok(tokens >= 4, `tokens fetched: ${tokens}`);
  } finally {
    await context.close();
  }
});

test("discovery through the hub's Link header (the 1.0 subscriptions API)", { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const [page] = await openPages(context, 1);
    for (const url of [hub.plain, hub.tls]) {
      // A 1.0 access token for this hub URL, allowed to read subscriptions.
      const now = Math.floor(Date.now() / 1000);
      const token = sign(
        {
          iss: 'ssehub',
          aud: url,
          exp: now + 60,
          authorization_details: [
            { type: 'https://mercure.rocks/authorization-detail', actions: ['subscribe'], topics: [{ match: '*' }] },
          ],
        },
        hub.secret,
        'at+jwt',
      );
      const found = await page.evaluate(
        ([u, t]) => window.ssehub.discover(`${u}/subscriptions/exact/${encodeURIComponent('https://example.com/js')}`, {
          headers: { authorization: `Bearer ${t}` },
        }),
        [url, token],
      );
      assert.equal(found, url);
    }
  } finally {
    await context.close();
  }
});

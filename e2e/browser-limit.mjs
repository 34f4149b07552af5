// The browser's 6-connection limit and its fixes, in real Chromium (run with
// `bash e2e/deploy.sh`, which starts ssehub, nginx and HAProxy).
//
// In each scenario a page served from another loopback origin opens 20
// EventSources to 20 topics of ONE origin (the hub or a proxy), node
// publishes one update per topic straight to the hub's plain port, and the
// page records, per topic, its `open` events and the messages it received
// with the time it received them. Each update carries the time it was
// published, so the page measures publish-to-receive delays: a buffering
// proxy would hold updates back.
//
// 1. plain HTTP/1.1: exactly 6 streams open and deliver, 14 stay pending;
// 2. ssehub's own HTTPS, HTTP/2: 20 of 20;
// 3. nginx (deploy/nginx/ssehub.conf), TLS and HTTP/2: 20 of 20, unbuffered;
// 4. HAProxy (deploy/haproxy/haproxy.cfg), TLS and HTTP/2: 20 of 20, unbuffered;
// 5. ssehub's HTTP/3 (QUIC forced on for the hub's origin): 20 of 20 over h3.
//
// Each scenario launches its own Chromium (the flags differ). The protocol of
// every stream is read from the DevTools protocol (Network.responseReceived),
// and a page of the origin itself reports its navigation's nextHopProtocol.
// Then, with node's HTTP/2 client, the proxies are checked to pass
// Last-Event-ID, Authorization and cookies, and to redirect plain HTTP.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { get as httpGet, createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';

import { CHROMIUM_ARGS, HUB, publish } from './helpers.mjs';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test with "bash e2e/deploy.sh"`);
  return value;
}

const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
/** deploy.sh passes this port's origin to ssehub's --cors-origins. */
const PAGE_PORT = Number(required('E2E_PAGE_PORT'));
/** Base64 SHA-256 of the SubjectPublicKeyInfo of ssehub's generated certificate. */
const SPKI = required('DEPLOY_SPKI');
const HUB_TLS_PORT = Number(required('DEPLOY_HUB_TLS_PORT'));
const NGINX_PORT = Number(required('DEPLOY_NGINX_PORT'));
const NGINX_HTTP_PORT = Number(required('DEPLOY_NGINX_HTTP_PORT'));
const HAPROXY_PORT = Number(required('DEPLOY_HAPROXY_PORT'));
const HAPROXY_HTTP_PORT = Number(required('DEPLOY_HAPROXY_HTTP_PORT'));
/** ssehub's generated certificate (PEM), which the proxies serve too. */
const CERT = required('DEPLOY_CERT');

/** EventSources per page, one topic each. */
const STREAMS = 20;
/** Chromium's limit of HTTP/1.1 connections per host:port (per socket group). */
const HTTP1_LIMIT = 6;
const TOPICS = Array.from({ length: STREAMS }, (_, i) => `urn:limit:${i}`);
/** Bound on publish-to-receive: a check that nothing buffers, not a benchmark. */
const MAX_DELAY_MS = 2000;
/** Bounded waits. */
const OPEN_WAIT_MS = 10_000;
const RECEIVE_WAIT_MS = 10_000;
/** How long pending HTTP/1.1 streams must stay pending to count as stuck. */
const PENDING_HOLD_MS = 2000;

/** Trust ssehub's self-signed certificate (also what nginx and HAProxy serve). */
const TLS_ARGS = [
  `--ignore-certificate-errors-spki-list=${SPKI}`,
  // localhost is what the certificate names; pin it to the IPv4 loopback
  // every listener is bound to.
  '--host-resolver-rules=MAP localhost 127.0.0.1',
];

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>ssehub connection limit</title></head>
<body>
<script>
  // Opens one EventSource per topic to one origin and records, per topic,
  // open events, errors, and the messages of this run with their delays.
  window.openAll = (base, topics, run) => {
    window.streams = topics.map((topic) => {
      const url = base + '/.well-known/mercure?topic=' + encodeURIComponent(topic);
      const record = { topic, opens: 0, errors: 0, messages: [], foreign: 0 };
      const es = new EventSource(url);
      record.es = es;
      es.onopen = () => { record.opens++; };
      es.onerror = () => { record.errors++; };
      es.onmessage = (e) => {
        const receivedAt = Date.now();
        let update;
        try { update = JSON.parse(e.data); } catch { record.foreign++; return; }
        if (update.run !== run) { record.foreign++; return; }
        record.messages.push({ topic: update.topic, id: e.lastEventId, delay: receivedAt - update.sentAt });
      };
      return record;
    });
  };
  window.state = () => window.streams.map(({ topic, opens, errors, messages, foreign, es }) =>
    ({ topic, opens, errors, messages, foreign, readyState: es.readyState }));
</script>
</body></html>`;

let pageServer;
let pageOrigin;

before(async () => {
  pageServer = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve, reject) => {
    pageServer.once('error', reject);
    pageServer.listen(PAGE_PORT, '127.0.0.1', resolve);
  });
  pageOrigin = `http://127.0.0.1:${PAGE_PORT}`;
});

after(() => pageServer?.close());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with `check()`'s value once `done(value)` holds; else after `ms` with the last value. */
async function poll(check, done, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(50);
  }
}

/** One line per topic, for failure messages. */
function describeStreams(streams) {
  return streams
    .map(
      (s) =>
        `  ${s.topic}: opens=${s.opens} errors=${s.errors} messages=${s.messages.length}` +
        ` delays=[${s.messages.map((m) => m.delay).join(',')}] foreign=${s.foreign} readyState=${s.readyState}`,
    )
    .join('\n');
}

/**
 * Launches Chromium with `args`, opens the page, opens the 20 EventSources to
 * `base`, runs `body` with what the scenario's assertions need, and closes
 * the browser.
 */
async function withScenario(args, base, body) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    timeout: 30_000,
  });
  try {
    // One context (one network session) for the streams and the probe page.
    const browserContext = await browser.newContext();
    const page = await browserContext.newPage();
    page.setDefaultTimeout(15_000);
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    await page.goto(`${pageOrigin}/`);
    // Every response the page receives, with the protocol it came over.
    const cdp = await browserContext.newCDPSession(page);
    const responses = [];
    cdp.on('Network.responseReceived', ({ type, response }) => {
      responses.push({
        type,
        url: response.url,
        status: response.status,
        protocol: response.protocol,
        headers: Object.fromEntries(
          Object.entries(response.headers).map(([k, v]) => [k.toLowerCase(), v]),
        ),
      });
    });
    await cdp.send('Network.enable');
    const run = randomUUID();
    await page.evaluate(([b, t, r]) => window.openAll(b, t, r), [base, TOPICS, run]);
    const state = () => page.evaluate(() => window.state());
    const context = { page, browserContext, run, state, responses, consoleLines, base };
    return await body(context);
  } finally {
    await browser.close();
  }
}

/** Publishes one update per topic, concurrently, straight to the hub's plain port. */
async function publishAll(run) {
  const ids = await Promise.all(
    TOPICS.map((topic) =>
      publish({ topic, data: JSON.stringify({ run, topic, sentAt: Date.now() }) }),
    ),
  );
  return ids;
}

/** Seconds, for the log. */
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

/**
 * The fixed cases: all 20 streams open, receive exactly their one update
 * within MAX_DELAY_MS, over `protocol`; the proxy-specific header checks.
 */
async function assertAllStreams(ctx, { protocol, name, altSvc }) {
  const t0 = Date.now();
  const opened = await poll(
    ctx.state,
    (s) => s.every((x) => x.opens >= 1),
    OPEN_WAIT_MS,
  );
  const openedIn = Date.now() - t0;
  const openCount = opened.filter((x) => x.opens >= 1).length;
  assert.equal(
    openCount,
    STREAMS,
    `${name}: ${openCount} of ${STREAMS} EventSources opened within ${OPEN_WAIT_MS} ms:\n${describeStreams(opened)}\nconsole: ${ctx.consoleLines.join(' | ')}`,
  );

  const t1 = Date.now();
  const ids = await publishAll(ctx.run);
  const got = await poll(
    ctx.state,
    (s) => s.every((x) => x.messages.length >= 1),
    RECEIVE_WAIT_MS,
  );
  const receivedIn = Date.now() - t1;
  const receivers = got.filter((x) => x.messages.length >= 1).length;
  assert.equal(
    receivers,
    STREAMS,
    `${name}: ${receivers} of ${STREAMS} streams received their update within ${RECEIVE_WAIT_MS} ms:\n${describeStreams(got)}`,
  );
  await sleep(200);
  const final = await ctx.state();
  final.forEach((s, i) => {
    assert.equal(s.opens, 1, `${name}: ${s.topic} opened once, never reconnected:\n${describeStreams(final)}`);
    assert.equal(s.errors, 0, `${name}: ${s.topic} had no error event:\n${describeStreams(final)}`);
    assert.equal(s.messages.length, 1, `${name}: ${s.topic} received exactly its update:\n${describeStreams(final)}`);
    assert.equal(s.messages[0].topic, s.topic, `${name}: ${s.topic} received its own topic's update`);
    assert.equal(s.messages[0].id, ids[i], `${name}: ${s.topic} received the id the hub answered`);
  });
  const delays = final.map((s) => s.messages[0].delay);
  const worst = Math.max(...delays);
  assert.ok(
    worst <= MAX_DELAY_MS,
    `${name}: every update arrives within ${MAX_DELAY_MS} ms of its publish (nothing buffers); delays: ${delays.join(', ')} ms`,
  );

  // The streams' responses, as the browser's network stack saw them.
  const streams = ctx.responses.filter((r) => r.type === 'EventSource');
  assert.equal(streams.length, STREAMS, `${name}: one response per EventSource (${streams.length})`);
  for (const r of streams) {
    assert.equal(r.status, 200, `${name}: ${r.url} answered ${r.status}`);
    assert.equal(r.protocol, protocol, `${name}: ${r.url} came over ${r.protocol}, not ${protocol}`);
    assert.match(r.headers['content-type'] ?? '', /^text\/event-stream/, `${name}: content-type`);
    // Chromium asks for zstd over HTTPS and ssehub compresses (--compression
    // on, each update once); the proxies pass it through as they got it.
    assert.equal(r.headers['content-encoding'], 'zstd', `${name}: compressed by ssehub, passed through`);
    if (altSvc) {
      assert.equal(r.headers['alt-svc'], altSvc, `${name}: Alt-Svc`);
    } else {
      assert.equal(r.headers['alt-svc'], undefined, `${name}: the proxy strips ssehub's Alt-Svc`);
    }
  }
  // A page of the origin itself reports its protocol too (cross-origin
  // Resource Timing entries hide nextHopProtocol without Timing-Allow-Origin).
  const probe = await ctx.browserContext.newPage();
  const nav = await probe.goto(`${ctx.base}/healthz`);
  assert.equal(nav.status(), 200, `${name}: ${ctx.base}/healthz`);
  const nextHop = await probe.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  assert.equal(nextHop, protocol, `${name}: the navigation's nextHopProtocol`);
  await probe.close();
  console.log(
    `${name}: ${STREAMS}/${STREAMS} open in ${secs(openedIn)}, all updates in ${secs(receivedIn)},` +
      ` delays max ${worst} ms, median ${delays.sort((a, b) => a - b)[delays.length >> 1]} ms,` +
      ` protocol ${protocol} (network stack and page's nextHopProtocol)`,
  );
}

describe('20 EventSources to one origin in Chromium', () => {
  test('plain HTTP/1.1: exactly 6 open and deliver, 14 stay pending (the problem)', async () => {
    const name = 'HTTP/1.1';
    await withScenario(['--disable-quic'], HUB, async (ctx) => {
      const t0 = Date.now();
      // Wait for 6 to open, then make sure no 7th follows.
      await poll(ctx.state, (s) => s.filter((x) => x.opens >= 1).length >= HTTP1_LIMIT, OPEN_WAIT_MS);
      const openedIn = Date.now() - t0;
      await sleep(PENDING_HOLD_MS);
      const held = await ctx.state();
      const open = held.filter((x) => x.opens >= 1);
      assert.equal(
        open.length,
        HTTP1_LIMIT,
        `${name}: ${open.length} of ${STREAMS} EventSources opened (expected exactly ${HTTP1_LIMIT}):\n${describeStreams(held)}`,
      );
      const pending = held.filter((x) => x.opens === 0);
      for (const p of pending) {
        // CONNECTING: waiting for a socket, neither failed nor closed.
        assert.equal(p.readyState, 0, `${name}: ${p.topic} is still connecting:\n${describeStreams(held)}`);
        assert.equal(p.errors, 0, `${name}: ${p.topic} had no error:\n${describeStreams(held)}`);
      }

      const t1 = Date.now();
      const ids = await publishAll(ctx.run);
      const got = await poll(
        ctx.state,
        (s) => s.filter((x) => x.messages.length >= 1).length >= HTTP1_LIMIT,
        RECEIVE_WAIT_MS,
      );
      const receivedIn = Date.now() - t1;
      await sleep(1000);
      const final = await ctx.state();
      const openTopics = new Set(open.map((x) => x.topic));
      final.forEach((s, i) => {
        if (openTopics.has(s.topic)) {
          assert.equal(s.messages.length, 1, `${name}: open stream ${s.topic} received its update:\n${describeStreams(final)}`);
          assert.equal(s.messages[0].id, ids[i], `${name}: ${s.topic} received the id the hub answered`);
          assert.ok(s.messages[0].delay <= MAX_DELAY_MS, `${name}: ${s.topic} delay ${s.messages[0].delay} ms`);
        } else {
          assert.equal(s.opens, 0, `${name}: pending stream ${s.topic} never opened:\n${describeStreams(final)}`);
          assert.equal(s.messages.length, 0, `${name}: pending stream ${s.topic} received nothing:\n${describeStreams(final)}`);
        }
      });
      assert.equal(got.filter((x) => x.messages.length >= 1).length, HTTP1_LIMIT);
      const streams = ctx.responses.filter((r) => r.type === 'EventSource');
      assert.equal(streams.length, HTTP1_LIMIT, `${name}: ${streams.length} EventSource responses, expected ${HTTP1_LIMIT}`);
      for (const r of streams) {
        assert.equal(r.protocol, 'http/1.1', `${name}: ${r.url} came over ${r.protocol}`);
      }
      console.log(
        `${name}: ${HTTP1_LIMIT}/${STREAMS} open in ${secs(openedIn)}, ${STREAMS - HTTP1_LIMIT} still pending after` +
          ` ${secs(PENDING_HOLD_MS + (Date.now() - t1))}; the open ones received their updates in ${secs(receivedIn)}`,
      );
    });
  });

  test("ssehub's own HTTPS with HTTP/2: 20 of 20", async () => {
    await withScenario(['--disable-quic', ...TLS_ARGS], `https://localhost:${HUB_TLS_PORT}`, (ctx) =>
      assertAllStreams(ctx, {
        name: 'ssehub HTTPS h2',
        protocol: 'h2',
        altSvc: `h3=":${HUB_TLS_PORT}"; ma=86400`,
      }),
    );
  });

  test('nginx (deploy/nginx/ssehub.conf) with TLS and HTTP/2: 20 of 20, unbuffered', async () => {
    await withScenario(['--disable-quic', ...TLS_ARGS], `https://localhost:${NGINX_PORT}`, (ctx) =>
      assertAllStreams(ctx, { name: 'nginx h2', protocol: 'h2' }),
    );
  });

  test('HAProxy (deploy/haproxy/haproxy.cfg) with TLS and HTTP/2: 20 of 20, unbuffered', async () => {
    await withScenario(['--disable-quic', ...TLS_ARGS], `https://localhost:${HAPROXY_PORT}`, (ctx) =>
      assertAllStreams(ctx, { name: 'HAProxy h2', protocol: 'h2' }),
    );
  });

  test("ssehub's HTTP/3 over QUIC: 20 of 20 over h3", async () => {
    const origin = `localhost:${HUB_TLS_PORT}`;
    await withScenario(
      ['--enable-quic', `--origin-to-force-quic-on=${origin}`, ...TLS_ARGS],
      `https://${origin}`,
      (ctx) =>
        assertAllStreams(ctx, {
          name: 'ssehub HTTP/3',
          protocol: 'h3',
          altSvc: `h3=":${HUB_TLS_PORT}"; ma=86400`,
        }),
    );
  });
});

/** GET over plain HTTP with node, no redirect following. */
function plainGet(port, path) {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, headers: { host: 'localhost' }, timeout: 5000 }, (res) => {
      res.resume();
      resolve({ status: res.statusCode, location: res.headers.location });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from 127.0.0.1:${port} within 5 s`)));
    req.on('error', reject);
  });
}

test('the proxies answer plain HTTP with a redirect to HTTPS', async () => {
  for (const [name, port] of [
    ['nginx', NGINX_HTTP_PORT],
    ['HAProxy', HAPROXY_HTTP_PORT],
  ]) {
    const res = await plainGet(port, '/.well-known/mercure?topic=urn:limit:0');
    assert.equal(res.status, 301, `${name}: plain HTTP answered ${res.status}`);
    assert.equal(res.location, 'https://localhost/.well-known/mercure?topic=urn:limit:0', `${name}: Location`);
  }
});

/**
 * The response head of one GET over HTTP/2 (TLS, certificate checked against
 * ssehub's, name localhost); the stream is then cancelled.
 */
function h2Head(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${port}`, {
      ca: readFileSync(CERT),
      servername: 'localhost',
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no response head from 127.0.0.1:${port}${path} within 5 s`));
    }, 5000);
    session.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    const req = session.request({ ':path': path, ':authority': `localhost:${port}`, ...headers });
    req.on('response', (head) => {
      clearTimeout(timer);
      req.close();
      session.close();
      resolve(head);
    });
    req.on('error', () => {});
    req.end();
  });
}

test('the proxies pass Last-Event-ID, Authorization and cookies to ssehub', async () => {
  const topic = 'urn:limit:headers';
  const id = await publish({ topic, data: 'cursor' });
  const path = `/.well-known/mercure?topic=${encodeURIComponent(topic)}`;
  for (const [name, port] of [
    ['nginx', NGINX_PORT],
    ['HAProxy', HAPROXY_PORT],
  ]) {
    const anonymous = await h2Head(port, path);
    assert.equal(anonymous[':status'], 200, `${name}: anonymous subscription`);
    // ssehub answers the cursor it resumes from: the header reached it.
    const resumed = await h2Head(port, path, { 'last-event-id': id });
    assert.equal(resumed[':status'], 200, `${name}: subscription with Last-Event-ID`);
    assert.equal(resumed['last-event-id'], id, `${name}: Last-Event-ID reached ssehub`);
    // A token that is present but invalid is refused even with --anonymous:
    // a 401 shows that the header (or cookie) reached ssehub.
    const bearer = await h2Head(port, path, { authorization: 'Bearer not-a-token' });
    assert.equal(bearer[':status'], 401, `${name}: Authorization reached ssehub`);
    // HTTP/2 clients may split cookies into several fields; the proxy must
    // join them for HTTP/1.1.
    const cookie = await h2Head(port, path, { cookie: ['theme=dark', 'mercureAuthorization=not-a-token'] });
    assert.equal(cookie[':status'], 401, `${name}: the cookie reached ssehub`);
  }
});

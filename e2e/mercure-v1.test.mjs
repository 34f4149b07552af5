// Mercure 1.0 beside 0.x, through the npm `eventsource` client, with tokens
// minted by the npm `jose` package in both shapes: the 0.x `mercure` claim
// and the 1.0 access token (typ at+jwt, iss/aud/exp, authorization_details).
// Each shape publishes and subscribes with 1.0's match= and 0.x's topic=,
// across generations, and private updates reach only the subscribers their
// tokens allow. Last, a hub of its own verifying ES256 tokens, with a pinned
// --hub-url and the default 1.0 cookie.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { exportSPKI, generateKeyPair } from 'jose';

import {
  DETAIL_TYPE,
  HUB,
  HUB_URL,
  accessToken,
  freePort,
  legacyToken,
  once,
  publish,
  sleep,
  uniqueTopic,
  waitFor,
} from './helpers.mjs';

const open = new Set();
after(() => {
  for (const es of open) es.close();
});

/** A subscribe URL of `hub` with these query parameters, in order. */
const subscribeQuery = (pairs, hub = HUB_URL) => `${hub}?${new URLSearchParams(pairs)}`;

/** A fetch for EventSource that adds `headers` to every request it makes. */
const fetchWith = (headers) => (url, init) =>
  fetch(url, { ...init, headers: { ...init.headers, ...headers } });

/** Bearer header of `token` (none for undefined). */
const bearer = (token) => (token ? { authorization: `Bearer ${token}` } : {});

/** An open EventSource sending `headers`, with every `message` recorded. */
async function connect(url, headers = {}) {
  const es = new EventSource(url, { fetch: fetchWith(headers) });
  open.add(es);
  const messages = [];
  es.addEventListener('message', (e) => messages.push(e));
  await once(es, 'open', 10_000);
  return { es, messages, got: () => messages.map((e) => [e.data, e.lastEventId]) };
}

/** POSTs an update and returns the raw response (publish() throws unless 200). */
function post(fields, headers, hub = HUB_URL) {
  return fetch(hub, {
    method: 'POST',
    headers,
    body: new URLSearchParams(fields),
    signal: AbortSignal.timeout(10_000),
  });
}

/** The challenge of a refused request: its status and WWW-Authenticate. */
async function refusal(res) {
  await res.body?.cancel();
  return { status: res.status, challenge: res.headers.get('www-authenticate') };
}

const METADATA = `${HUB}/.well-known/oauth-protected-resource/.well-known/mercure`;

test('jose-minted 0.x and 1.0 tokens publish; each is refused a topic it does not grant', async () => {
  const base = uniqueTopic('v1-publish');
  const legacy = await legacyToken({ publish: [`${base}/legacy`] });
  const v1 = await accessToken({
    publish: [{ match: `${base}/books/:id`, match_type: 'urlpattern' }, `${base}/exact`],
  });

  const ids = [];
  for (const [token, topic] of [
    [legacy, `${base}/legacy`],
    [v1, `${base}/books/1`],
    [v1, `${base}/exact`],
  ]) {
    const res = await post({ topic, data: 'x' }, bearer(token));
    assert.equal(res.status, 200, `publish to ${topic}: ${await res.clone().text()}`);
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    ids.push(await res.text());
  }
  assert.equal(new Set(ids).size, 3, `three distinct ids: ${ids}`);
  assert.ok(ids.every((id) => id.length > 0));

  for (const [token, topic] of [
    [legacy, `${base}/books/1`],
    [v1, `${base}/authors/1`],
    [v1, `${base}/books/1/chapters/2`],
  ]) {
    const { status, challenge } = await refusal(await post({ topic, data: 'x' }, bearer(token)));
    assert.equal(status, 403, `publish to ${topic}`);
    assert.match(challenge, /^Bearer realm="ssehub", error="insufficient_scope"/);
    assert.ok(challenge.endsWith(`, resource_metadata="${METADATA}"`), challenge);
  }
});

test('both token shapes subscribe with match= and with topic=, and get what either shape publishes', async () => {
  const topic = uniqueTopic('v1-matrix');
  const tokens = {
    '0.x': await legacyToken({ subscribe: [topic] }),
    '1.0': await accessToken({ subscribe: [topic] }),
  };
  const subscribers = {};
  for (const [shape, token] of Object.entries(tokens)) {
    for (const param of ['match', 'topic']) {
      subscribers[`${shape} token, ${param}=`] = await connect(
        subscribeQuery([[param, topic]]),
        bearer(token),
      );
    }
  }
  const publishers = {
    '0.x': await legacyToken({ publish: [topic] }),
    '1.0': await accessToken({ publish: [topic] }),
  };
  const sent = [];
  for (const [isPrivate, shape] of [[true, '0.x'], [true, '1.0'], [false, '1.0'], [false, '0.x']]) {
    const data = `${isPrivate ? 'private' : 'public'} from a ${shape} publisher`;
    sent.push([data, await publish({ topic, data, private: isPrivate }, publishers[shape])]);
  }
  for (const [name, s] of Object.entries(subscribers)) {
    await waitFor(() => s.messages.length >= sent.length, 10_000, `every update (${name})`);
  }
  await sleep(200);
  for (const [name, s] of Object.entries(subscribers)) {
    assert.deepEqual(s.got(), sent, name);
    s.es.close();
  }
});

test('a private update reaches only subscribers whose token grants one of its topics, across generations', async () => {
  const base = uniqueTopic('v1-private');
  const book = `${base}/books/1`;
  const alternate = `${base}/alternates/1`;
  const bookPattern = { match: `${base}/books/:id`, match_type: 'urlpattern' };
  const subscribers = {
    // Authorized for the book: a 0.x token on a 1.0 request, a 1.0 token
    // (URL pattern grant) on a 0.x request.
    '0.x token, match=': await connect(
      subscribeQuery([['match', book]]),
      bearer(await legacyToken({ subscribe: [book] })),
    ),
    '1.0 token, topic=': await connect(
      subscribeQuery([['topic', book]]),
      bearer(await accessToken({ subscribe: [bookPattern] })),
    ),
    // Authorized for the alternate topic only.
    '1.0 token for the alternate, match_exact=': await connect(
      subscribeQuery([['match_exact', book]]),
      bearer(await accessToken({ subscribe: [{ match: alternate, match_type: 'exact' }] })),
    ),
    // Not authorized: tokens for other topics, and no token.
    '0.x token for another topic, topic=': await connect(
      subscribeQuery([['topic', book]]),
      bearer(await legacyToken({ subscribe: [`${base}/authors/{id}`] })),
    ),
    '1.0 token for another topic, match_urlpattern=': await connect(
      subscribeQuery([['match_urlpattern', `${base}/books/:id`]]),
      bearer(await accessToken({ subscribe: [{ match: `${base}/authors/*`, match_type: 'urlpattern' }] })),
    ),
    'anonymous, match=': await connect(subscribeQuery([['match', book]])),
  };

  const legacyPublisher = await legacyToken({ publish: [`${base}/{+rest}`] });
  const v1Publisher = await accessToken({ publish: [{ match: `${base}/*`, match_type: 'urlpattern' }] });
  const p0 = ['p0', await publish({ topic: book, data: 'p0', private: true }, legacyPublisher)];
  const p1 = ['p1', await publish({ topic: book, data: 'p1', private: true }, v1Publisher)];
  // Canonical topic and alternate: private to anyone granted either.
  const p2 = ['p2', await publish({ topic: [book, alternate], data: 'p2', private: true }, legacyPublisher)];
  const pub = ['public', await publish({ topic: book, data: 'public' }, v1Publisher)];

  const want = {
    '0.x token, match=': [p0, p1, p2, pub],
    '1.0 token, topic=': [p0, p1, p2, pub],
    '1.0 token for the alternate, match_exact=': [p2, pub],
    '0.x token for another topic, topic=': [pub],
    '1.0 token for another topic, match_urlpattern=': [pub],
    'anonymous, match=': [pub],
  };
  for (const [name, s] of Object.entries(subscribers)) {
    await waitFor(() => s.messages.length >= want[name].length, 10_000, `the updates of ${name}`);
  }
  // The public update was published last: anything private still on its
  // way would have been delivered before it.
  await sleep(200);
  for (const [name, s] of Object.entries(subscribers)) {
    assert.deepEqual(s.got(), want[name], name);
    s.es.close();
  }
});

test('refusals: RFC 6750 challenges, iss/aud/exp checks, no token in the URL for 1.0, the metadata', async () => {
  const topic = uniqueTopic('v1-refusals');
  const { status, challenge } = await refusal(await post({ topic, data: 'x' }, {}));
  assert.equal(status, 401, 'publish without a token');
  assert.equal(challenge, `Bearer realm="ssehub", resource_metadata="${METADATA}"`);

  const grants = { publish: [topic], subscribe: [topic] };
  const invalid = {
    'another issuer': await accessToken(grants, { issuer: 'https://elsewhere.example' }),
    'another audience': await accessToken(grants, { audience: 'http://elsewhere.example/.well-known/mercure' }),
    'no exp': await accessToken(grants, { ttl: null }),
    'expired': await accessToken(grants, { ttl: Math.floor(Date.now() / 1000) - 3600 }),
    'another key': await accessToken(grants, { key: new TextEncoder().encode('not the hub secret') }),
    'a malformed Mercure detail': await accessToken(grants, {
      claims: { authorization_details: [{ type: DETAIL_TYPE, actions: ['publish'], topics: 'not a list' }] },
    }),
  };
  for (const [why, token] of Object.entries(invalid)) {
    for (const res of [
      await post({ topic, data: 'x' }, bearer(token)),
      await fetch(subscribeQuery([['match', topic]]), { headers: bearer(token), signal: AbortSignal.timeout(10_000) }),
    ]) {
      const { status, challenge } = await refusal(res);
      assert.equal(status, 401, `${res.url}: ${why}`);
      assert.match(challenge, /^Bearer realm="ssehub", error="invalid_token", error_description="[^"]*"/, why);
      assert.ok(challenge.endsWith(`, resource_metadata="${METADATA}"`), challenge);
    }
  }

  // aud may be an array naming the hub among others.
  const many = await accessToken({ publish: [topic] }, { audience: ['https://other.example/api', HUB_URL] });
  assert.equal((await refusal(await post({ topic, data: 'x' }, bearer(many)))).status, 200, 'aud array');

  // 1.0 requests take no token from the URL, whatever its shape.
  for (const token of [await accessToken(grants), await legacyToken(grants)]) {
    const res = await fetch(subscribeQuery([['match', topic], ['authorization', token]]), {
      signal: AbortSignal.timeout(10_000),
    });
    const { status, challenge } = await refusal(res);
    assert.equal(status, 400);
    assert.match(challenge, /^Bearer realm="ssehub", error="invalid_request"/);
  }

  const res = await fetch(METADATA, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    resource: HUB_URL,
    authorization_details_types_supported: [DETAIL_TYPE],
    bearer_methods_supported: ['header'],
    mercure_cookie: 'mercure_access_token',
    mercure_matcher_types_supported: ['exact', 'urlpattern'],
    mercure_subscriptions: true,
  });
});

describe('a hub verifying ES256 tokens, with a pinned --hub-url', () => {
  // What tokens must name as their audience: not what the Host says.
  const PINNED = 'https://hub.e2e.example/.well-known/mercure';
  let hub;
  let url;
  let keys;
  let dataDir;
  let log = '';

  before(async () => {
    const binary = process.env.E2E_SSEHUB;
    assert.ok(binary, 'E2E_SSEHUB (the ssehub binary) is set by run.sh');
    keys = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportSPKI(keys.publicKey);
    const port = await freePort();
    url = `http://127.0.0.1:${port}/.well-known/mercure`;
    dataDir = mkdtempSync(join(tmpdir(), 'ssehub-e2e-es256-'));
    hub = spawn(binary, [
      'serve',
      '--listen', `127.0.0.1:${port}`,
      '--tls-listen', 'none',
      '--metrics-listen', '127.0.0.1:0',
      '--data-dir', dataDir,
      '--publisher-jwt-alg', 'ES256',
      // One argument: clap takes a separate value starting with "-" for a flag.
      `--publisher-jwt-key=${pem}`,
      '--hub-url', PINNED,
      '--heartbeat', '1s',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [hub.stdout, hub.stderr]) stream.on('data', (d) => { log += d; });
    const readyz = `http://127.0.0.1:${port}/readyz`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      assert.equal(hub.exitCode, null, `the ES256 hub exited:\n${log}`);
      try {
        if ((await fetch(readyz, { signal: AbortSignal.timeout(1_000) })).ok) break;
      } catch {
        // Not listening yet.
      }
      assert.ok(Date.now() < deadline, `the ES256 hub did not answer ${readyz} within 10 s:\n${log}`);
      await sleep(50);
    }
  });

  after(async () => {
    for (const es of open) es.close();
    if (hub && hub.exitCode === null) {
      hub.kill('SIGTERM');
      await waitFor(() => hub.exitCode !== null || hub.signalCode !== null, 10_000, 'the ES256 hub to stop')
        .catch(() => hub.kill('SIGKILL'));
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** Tokens signed with the hub's ES256 key; its issuer is the default one. */
  const v1 = (grants, options = {}) =>
    accessToken(grants, { key: keys.privateKey, alg: 'ES256', audience: PINNED, issuer: 'ssehub', ...options });
  const legacy = (grants) => legacyToken(grants, { key: keys.privateKey, alg: 'ES256' });

  test('ES256 tokens of both shapes work, with the __Secure-mercure_access_token cookie; HS256 and Host-derived audiences do not', async () => {
    const topic = uniqueTopic('v1-es256');
    const cookie = await connect(subscribeQuery([['match', topic]], url), {
      cookie: `other=1; __Secure-mercure_access_token=${await v1({ subscribe: [topic] })}`,
    });
    const header = await connect(
      subscribeQuery([['topic', topic]], url),
      bearer(await legacy({ subscribe: [topic] })),
    );
    const v1Id = await publish({ topic, data: 'v1', private: true }, await v1({ publish: [topic] }), url);
    const legacyId = await publish({ topic, data: '0.x', private: true }, await legacy({ publish: [topic] }), url);
    for (const s of [cookie, header]) {
      await waitFor(() => s.messages.length >= 2, 10_000, 'both private updates');
    }
    await sleep(200);
    for (const s of [cookie, header]) {
      assert.deepEqual(s.got(), [['v1', v1Id], ['0.x', legacyId]]);
      s.es.close();
    }

    const refused = {
      'an HS256 1.0 token': await accessToken({ publish: [topic] }, { audience: PINNED, issuer: 'ssehub' }),
      'an HS256 0.x token': await legacyToken({ publish: [topic] }),
      'a 1.0 token for the Host-derived URL': await v1({ publish: [topic] }, { audience: url }),
    };
    for (const [why, token] of Object.entries(refused)) {
      const { status, challenge } = await refusal(await post({ topic, data: 'x' }, bearer(token), url));
      assert.equal(status, 401, why);
      assert.match(challenge, /error="invalid_token"/, why);
      assert.ok(
        challenge.endsWith(', resource_metadata="https://hub.e2e.example/.well-known/oauth-protected-resource/.well-known/mercure"'),
        challenge,
      );
    }

    // Not --anonymous: subscribing needs a token.
    const res = await fetch(subscribeQuery([['match', topic]], url), { signal: AbortSignal.timeout(10_000) });
    assert.deepEqual(await refusal(res), {
      status: 401,
      challenge: 'Bearer realm="ssehub", resource_metadata="https://hub.e2e.example/.well-known/oauth-protected-resource/.well-known/mercure"',
    });
  });
});


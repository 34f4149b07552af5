// Shared helpers of the end-to-end suite. run.sh starts the hub and passes
// where it listens and its HMAC secret through the environment.

import { createHmac, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { SignJWT } from 'jose';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the suite with "bash e2e/run.sh"`);
  }
  return value;
}

/** Base URL of the hub under test, e.g. http://127.0.0.1:PORT */
export const HUB = required('E2E_HUB');
/** The hub's publisher (and subscriber) HS256 key. */
export const SECRET = required('E2E_SECRET');
/** The hub's Mercure endpoint. */
export const HUB_URL = `${HUB}/.well-known/mercure`;

const b64url = (value) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** An HS256 JWT for `payload`, signed with the hub's secret. */
export function sign(payload, key = SECRET) {
  const head = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`;
  const signature = createHmac('sha256', key).update(head).digest('base64url');
  return `${head}.${signature}`;
}

/** A token that may publish to every topic. */
export const PUBLISHER = sign({ mercure: { publish: ['*'] } });

/** A subscriber token for `topics`, expiring `ttlSeconds` from now if given. */
export function subscriberToken(topics, ttlSeconds) {
  const payload = { mercure: { subscribe: topics } };
  if (ttlSeconds !== undefined) {
    payload.exp = Math.floor(Date.now() / 1000) + ttlSeconds;
  }
  return sign(payload);
}

/** The issuer the hub trusts for 1.0 access tokens (run.sh's --jwt-issuer). */
export const ISSUER = process.env.E2E_JWT_ISSUER || 'ssehub';
/** The `type` of a Mercure authorization detail. */
export const DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';

/** The hub's HMAC secret as jose takes it: the bytes of the configured string. */
const SECRET_KEY = new TextEncoder().encode(SECRET);

/**
 * A Mercure 0.x token minted by jose: the `mercure` claim, HS256 with the
 * hub's secret unless `key` and `alg` say otherwise.
 */
export function legacyToken(mercure, { key = SECRET_KEY, alg = 'HS256' } = {}) {
  return new SignJWT({ mercure }).setProtectedHeader({ alg }).setIssuedAt().sign(key);
}

/**
 * A Mercure 1.0 access token (RFC 9068, `typ: at+jwt`) minted by jose.
 * `publish` and `subscribe` list topic matchers, a string being an exact
 * topic (the default match_type) and an object a full matcher such as
 * `{ match, match_type: 'urlpattern' }`; `payload` goes on the subscribe
 * detail. Options: `key`/`alg` (default the hub's HS256 secret),
 * `audience` (default the hub URL as the hub derives it from Host),
 * `issuer`, `ttl` (a jose duration; `null` for no `exp`), and `claims`
 * merged over the generated ones.
 */
export function accessToken({ publish = [], subscribe = [], payload } = {}, options = {}) {
  const {
    key = SECRET_KEY,
    alg = 'HS256',
    audience = HUB_URL,
    issuer = ISSUER,
    ttl = '1h',
    claims = {},
  } = options;
  const topics = (list) => list.map((t) => (typeof t === 'string' ? { match: t } : t));
  const details = [];
  if (publish.length) {
    details.push({ type: DETAIL_TYPE, actions: ['publish'], topics: topics(publish) });
  }
  if (subscribe.length) {
    const detail = { type: DETAIL_TYPE, actions: ['subscribe'], topics: topics(subscribe) };
    if (payload !== undefined) detail.payload = payload;
    details.push(detail);
  }
  const subject = `urn:e2e:${randomUUID()}`;
  const jwt = new SignJWT({ client_id: 'ssehub-e2e', authorization_details: details, ...claims })
    .setProtectedHeader({ alg, typ: 'at+jwt' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(subject)
    .setIssuedAt()
    .setJti(`urn:uuid:${randomUUID()}`);
  if (ttl !== null) jwt.setExpirationTime(ttl);
  return jwt.sign(key);
}

/** A topic no other test uses. */
export function uniqueTopic(name) {
  return `https://e2e.example/${name}/${randomUUID()}`;
}

/** The subscribe URL for `topics` with extra query parameters. */
export function subscribeUrl(topics, params = {}) {
  const query = new URLSearchParams();
  for (const topic of [].concat(topics)) query.append('topic', topic);
  for (const [k, v] of Object.entries(params)) query.append(k, v);
  return `${HUB_URL}?${query}`;
}

/**
 * Publishes one update (form fields; `private: true` adds `private=on`) to
 * `hub` and returns the id it answers; throws unless it answers 200.
 */
export async function publish(fields, token = PUBLISHER, hub = HUB_URL) {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === false) continue;
    for (const one of [].concat(v)) form.append(k, one === true ? 'on' : String(one));
  }
  const res = await fetch(hub, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.text();
  if (res.status !== 200) {
    throw new Error(`publish answered ${res.status}: ${body}`);
  }
  return body;
}

/** What an SSE client must dispatch for `data`: CRLF and lone CR become LF. */
export function normalized(data) {
  return data.replace(/\r\n|\r/g, '\n');
}

/** Payloads whose framing is easy to get wrong. */
export const TRICKY = [
  { name: 'plain', data: 'hello' },
  { name: 'empty', data: '' },
  { name: 'LF lines', data: 'one\ntwo\nthree' },
  { name: 'CRLF lines', data: 'one\r\ntwo\r\nthree' },
  { name: 'lone CR', data: 'one\rtwo' },
  { name: 'mixed breaks', data: 'a\r\nb\rc\nd\r\n\r\ne' },
  { name: 'leading spaces', data: '  two spaces\n one space\n\ttab' },
  { name: 'leading colon', data: ':not a comment\ndata: not a field' },
  { name: 'trailing LF', data: 'ends with LF\n' },
  { name: 'trailing CRLF', data: 'ends with CRLF\r\n' },
  { name: 'only breaks', data: '\n\n' },
  { name: 'unicode', data: 'héllo wörld ✓ 😀 日本語 \u2028 \u00a0' },
  { name: 'json', data: '{"a":[1,2,{"b":"c d"}],"e":null}' },
  { name: '10 KB line', data: 'x'.repeat(5000) + 'é'.repeat(2000) + 'y'.repeat(3000) },
];

/** Resolves when `check()` (or the promise it returns) is truthy; rejects after `ms`. */
export async function waitFor(check, ms, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the first `event` that `target` fires; rejects after `ms`. */
export function once(target, event, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.removeEventListener(event, on);
      reject(new Error(`no "${event}" within ${ms} ms`));
    }, ms);
    const on = (e) => {
      clearTimeout(timer);
      target.removeEventListener(event, on);
      resolve(e);
    };
    target.addEventListener(event, on);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Flags every Chromium launch needs on this machine: no sandbox as root, no
 * GPU, and no background traffic to a network that is not there.
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A free loopback port (bound to port 0, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

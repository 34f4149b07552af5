// The client side of e2e/cluster.sh: three ssehub nodes sharing one Redis
// stream, behind nginx or HAProxy rendered from deploy/cluster/.
//
//   node cluster.mjs   the scenario below, through one proxy (env: see
//                      cluster.sh)
//
// The scenario, all over HTTP/2 with TLS to the proxy (the certificate is
// checked), with the npm `eventsource` client for subscribers:
//  1. six subscribers open through the proxy and land on all three nodes (no
//     stickiness, least connections); publishes, one at a time and then
//     concurrent, go through the proxy to every node; every subscriber gets
//     every update exactly once, all in the same order;
//  2. hub2 is killed with SIGKILL: publishes keep succeeding at once (the
//     proxy retries a refused connection on another node; a publish that was
//     in flight to hub2, or sent on an idle connection to it as it died, may
//     be answered 502: nobody knows whether it was appended, so the publisher
//     sends a new update, and the first one must show up everywhere or
//     nowhere), hub2's subscribers reconnect through the proxy with
//     Last-Event-ID and miss nothing, new subscribers open, and resuming with
//     Last-Event-ID (header or lastEventID parameter) through the proxy
//     replays exactly what followed;
//  3. hub3 loses Redis (it reaches Redis through e2e/relay.mjs, which
//     cluster.sh starts and this script cuts), so its /readyz answers 503:
//     HAProxy's health check takes it out (nginx: a 503 answer to a GET is
//     retried on another node and takes it out for fail_timeout), and
//     publishes and resumptions succeed on the remaining node; when Redis is
//     back, hub3 answers /readyz 200 and takes publishes again, and its
//     subscribers, which stayed connected, receive what they missed.
//  Finally every subscriber, old or new, holds exactly the updates it should,
//  in the cluster's one order.

import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, constants } from 'node:http2';
import { EventSource } from 'eventsource';
import { createParser } from 'eventsource-parser';

const started = Date.now();
const log = (...args) => console.error(`cluster: [${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args);

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run bash e2e/cluster.sh`);
  return value;
}

const PROXY = env('CLUSTER_PROXY'); // nginx | haproxy
const PORT = Number(env('CLUSTER_PORT'));
const CA = readFileSync(env('CLUSTER_CERT'));
const SECRET = env('CLUSTER_SECRET');
const RELAY_PID = Number(env('CLUSTER_RELAY_PID'));
const PROXY_LOG = env('CLUSTER_PROXY_LOG');
// "hub1:PORT:PID hub2:PORT:PID hub3:PORT:PID"
const NODES = env('CLUSTER_NODES')
  .split(' ')
  .map((n) => {
    const [name, port, pid] = n.split(':');
    return { name, port: Number(port), pid: Number(pid) };
  });
const node = (name) => NODES.find((n) => n.name === name);
const AUTHORITY = `localhost:${PORT}`;

const b64url = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
function sign(payload) {
  const head = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}
const PUBLISHER = sign({ mercure: { publish: ['*'] } });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${PROXY}: timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

function session() {
  const s = connect(`https://127.0.0.1:${PORT}`, { ca: CA, servername: 'localhost' });
  s.on('error', (e) => log(`HTTP/2 session error: ${e.message}`));
  return s;
}

/**
 * The nodes a response passed through, from the X-Node header the test
 * rendering adds: nginx's $upstream_addr ("127.0.0.1:P" or, after a retry,
 * "127.0.0.1:P1, 127.0.0.1:P2"), HAProxy's server name.
 */
function route(head) {
  const value = String(head['x-node'] ?? '');
  if (!value) return [];
  return value.split(/, | : /).map((one) => {
    const byPort = NODES.find((n) => one === `127.0.0.1:${n.port}`);
    return byPort ? byPort.name : one;
  });
}

function headersOf(head) {
  const headers = new Headers();
  for (const [k, v] of Object.entries(head)) {
    if (!k.startsWith(':')) headers.set(k, Array.isArray(v) ? v.join(', ') : String(v));
  }
  return headers;
}

/** A fetch for `eventsource` over one HTTP/2 session; `seen(attempt)` learns of each response. */
function h2fetch(s, seen) {
  return (url, init) =>
    new Promise((resolve, reject) => {
      const u = new URL(url);
      const headers = {};
      for (const [k, v] of Object.entries(init.headers ?? {})) headers[k.toLowerCase()] = v;
      const req = s.request({ ':method': 'GET', ':path': u.pathname + u.search, ':authority': AUTHORITY, ...headers });
      const abort = () => {
        req.close(constants.NGHTTP2_CANCEL);
        reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      };
      if (init.signal?.aborted) return abort();
      init.signal?.addEventListener('abort', abort, { once: true });
      req.on('error', reject);
      req.on('response', (head) => {
        seen({ status: head[':status'], route: route(head), cursor: headers['last-event-id'] ?? null });
        let done = false;
        const body = new ReadableStream({
          start(ctrl) {
            req.on('data', (chunk) => done || ctrl.enqueue(new Uint8Array(chunk)));
            req.on('end', () => {
              if (!done) (done = true), ctrl.close();
            });
            req.on('error', (e) => {
              if (!done) (done = true), ctrl.error(e);
            });
            req.on('close', () => {
              if (!done) (done = true), ctrl.error(new Error(`stream closed (code ${req.rstCode})`));
            });
          },
          cancel() {
            done = true;
            req.close(constants.NGHTTP2_CANCEL);
          },
        });
        resolve({ status: head[':status'], headers: headersOf(head), body, url: String(url), redirected: false });
      });
      req.end();
    });
}

const mercure = (params) => `https://${AUTHORITY}/.well-known/mercure?${new URLSearchParams(params)}`;

/** An EventSource through the proxy; records every response and event. */
function subscriber(name, s, topic) {
  const sub = { name, events: [], ids: [], idSet: new Set(), attempts: [], errors: [] };
  sub.es = new EventSource(mercure({ topic }), {
    fetch: h2fetch(s, (attempt) => sub.attempts.push(attempt)),
  });
  sub.es.onmessage = (e) => {
    sub.events.push({ id: e.lastEventId, data: e.data });
    sub.ids.push(e.lastEventId);
    sub.idSet.add(e.lastEventId);
  };
  sub.es.onerror = (e) => sub.errors.push(e.message ?? String(e.code));
  /** The node serving its current (or last) stream. */
  sub.node = () => sub.attempts.filter((a) => a.status === 200).at(-1)?.route.at(-1);
  sub.opened = () => sub.attempts.filter((a) => a.status === 200).length;
  return sub;
}

async function openAll(subs, what) {
  await waitFor(() => subs.every((s) => s.opened() >= 1 || s.es.readyState === 2), 10000, `${what} to open`);
  for (const s of subs) {
    assert.equal(s.es.readyState, 1, `${PROXY}: ${s.name} did not open: ${JSON.stringify(s.attempts)} ${s.errors}`);
  }
}

/** POST one update through the proxy: { status, body, route }. */
function post(s, fields, token = PUBLISHER) {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams(fields).toString();
    const req = s.request({
      ':method': 'POST',
      ':path': '/.well-known/mercure',
      ':authority': AUTHORITY,
      authorization: `Bearer ${token}`,
      'content-type': 'application/x-www-form-urlencoded',
    });
    const timer = setTimeout(() => req.close(constants.NGHTTP2_CANCEL), 10000);
    let head;
    let text = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (head = h));
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      clearTimeout(timer);
      resolve({ status: head[':status'], body: text.trim(), route: route(head) });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      // RST_STREAM REFUSED_STREAM: the proxy says the request was not
      // processed (HAProxy, when the idle node connection it reused was dead).
      if (req.rstCode === constants.NGHTTP2_REFUSED_STREAM) resolve({ status: 'REFUSED_STREAM', body: '', route: [] });
      else reject(e);
    });
    req.end(body);
  });
}

/**
 * Resumes through the proxy from `cursor` (header, or lastEventID parameter)
 * and collects `count` events, then waits 300 ms for any extra one.
 */
function resume(s, topic, cursor, count, how) {
  return new Promise((resolve, reject) => {
    const params = { topic };
    const headers = {};
    if (how === 'header') headers['last-event-id'] = cursor;
    else params.lastEventID = cursor;
    const url = new URL(mercure(params));
    const req = s.request({ ':path': url.pathname + url.search, ':authority': AUTHORITY, ...headers });
    const ids = [];
    let head;
    let settle;
    const finish = () => {
      clearTimeout(timer);
      req.close(constants.NGHTTP2_CANCEL);
      resolve({ status: head?.[':status'], resumedFrom: head?.['last-event-id'], route: head ? route(head) : [], ids });
    };
    const timer = setTimeout(finish, 5000);
    const parser = createParser({
      onEvent: (e) => {
        ids.push(e.id);
        if (ids.length >= count && !settle) settle = setTimeout(finish, 300);
      },
    });
    req.setEncoding('utf8');
    req.on('response', (h) => {
      head = h;
      if (h[':status'] !== 200) finish();
    });
    req.on('data', (c) => parser.feed(c));
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

/** A GET through the proxy held open: { status, route, close() } once the head arrives. */
function openStream(s, url, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = s.request({ ':path': u.pathname + u.search, ':authority': AUTHORITY, ...headers });
    const close = () => req.close(constants.NGHTTP2_CANCEL);
    const timer = setTimeout(() => {
      close();
      reject(new Error(`${PROXY}: no response head for ${url} within 5 s`));
    }, 5000);
    req.on('response', (head) => {
      clearTimeout(timer);
      resolve({ status: head[':status'], route: route(head), close });
    });
    req.on('data', () => {});
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

function tally(routes) {
  const counts = {};
  for (const r of routes) counts[r.at(-1)] = (counts[r.at(-1)] ?? 0) + 1;
  return counts;
}

function duplicates(values) {
  const seen = new Set();
  return values.filter((v) => seen.has(v) || !seen.add(v));
}

async function check() {
  const topic = `https://cluster.example/${PROXY}/${randomUUID()}`;
  const subSession = session();
  const pubSession = session();
  const acked = []; // { id, data } answered 200, in answer order
  const ambiguous = new Set(); // data of publishes answered 502 or refused: applied or not
  const routes = [];
  let n = 0;

  // One publish. While `budget.failures` lasts, a 502 (the node died with
  // the request in flight, or the proxy sent it on an idle connection to the
  // dead node: nobody knows whether it was appended) or a refused HTTP/2
  // stream is tolerated: the publisher then sends a new update, as a real
  // one would.
  const publishOne = async (what, budget = { failures: 0 }) => {
    for (;;) {
      const data = `${PROXY} ${what} ${n++}`;
      const res = await post(pubSession, { topic, data, retry: '200' });
      if ((res.status === 502 || res.status === 'REFUSED_STREAM') && budget.failures > 0) {
        log(`${PROXY}: "${data}" answered ${res.status} via ${res.route.join(' -> ') || '?'}: sent to the dead node; publishing again`);
        ambiguous.add(data);
        budget.failures--;
        continue;
      }
      assert.equal(res.status, 200, `${PROXY}: publish "${data}" answered ${res.status} via ${res.route}: ${res.body}`);
      acked.push({ id: res.body, data });
      routes.push(res.route);
      return res;
    }
  };
  const publishSeq = async (count, what, failures = 0) => {
    const budget = { failures };
    const out = [];
    for (let i = 0; i < count; i++) out.push(await publishOne(what, budget));
    return out;
  };
  const hasAll = (s) => acked.every((a) => s.idSet.has(a.id));
  const everyone = [];

  // 1. Six subscribers over all three nodes; publishes over all three.
  const subs = Array.from({ length: 6 }, (_, i) => subscriber(`s${i}`, subSession, topic));
  everyone.push(...subs);
  await openAll(subs, 'the first subscribers');
  const placement = tally(subs.map((s) => [s.node()]));
  log(`${PROXY}: subscribers per node ${JSON.stringify(placement)}`);
  for (const { name } of NODES) {
    assert.ok(placement[name] >= 1, `${PROXY}: no subscriber landed on ${name}: ${JSON.stringify(placement)}`);
  }

  await publishSeq(15, 'sequential');
  await Promise.all(Array.from({ length: 3 }, (_, p) => publishSeq(5, `concurrent p${p}`)));
  const publishedOn = tally(routes);
  log(`${PROXY}: publishes per node ${JSON.stringify(publishedOn)}`);
  for (const { name } of NODES) {
    assert.ok(publishedOn[name] >= 1, `${PROXY}: no publish went to ${name}: ${JSON.stringify(publishedOn)}`);
  }
  await waitFor(() => subs.every(hasAll), 10000, 'the first 30 updates everywhere');
  const first = subs[0].ids.slice();
  assert.deepEqual(first.slice(0, 15), acked.slice(0, 15).map((a) => a.id), `${PROXY}: sequential publishes out of order`);
  for (const s of subs) {
    assert.deepEqual(s.ids, first, `${PROXY}: ${s.name} (on ${s.node()}) saw another sequence`);
  }
  log(`${PROXY}: 30 updates, published on every node, reached all 6 subscribers once each, in one order`);

  // 2. kill -9 a node, then publish at once: a publish that meets a dead
  // connection to the node may fail (nginx: one per worker at most, as the
  // first failure takes the node out); every other publish succeeds.
  const victim = node('hub2');
  const orphans = subs.filter((s) => s.node() === victim.name);
  process.kill(victim.pid, 'SIGKILL');
  log(`${PROXY}: killed hub2 (pid ${victim.pid}), which served ${orphans.map((s) => s.name).join(', ')}`);
  const afterKill = await publishSeq(10, 'after kill', 2);
  for (const res of afterKill) {
    assert.notEqual(res.route.at(-1), victim.name, `${PROXY}: a publish was answered by the dead node`);
  }
  const retried = afterKill.filter((r) => r.route.length > 1);
  if (retried.length) log(`${PROXY}: publishes whose connection was refused, retried by the proxy: ${retried.map((r) => r.route.join(' -> ')).join('; ')}`);
  await waitFor(
    () => orphans.every((s) => s.opened() >= 2 && s.es.readyState === 1),
    10000,
    "the dead node's subscribers to reconnect",
  );
  for (const s of orphans) {
    const again = s.attempts.filter((a) => a.status === 200).at(-1);
    assert.notEqual(again.route.at(-1), victim.name, `${PROXY}: ${s.name} reconnected to the dead node`);
    assert.ok(again.cursor, `${PROXY}: ${s.name} reconnected without Last-Event-ID`);
    log(`${PROXY}: ${s.name} reconnected to ${again.route.at(-1)} with Last-Event-ID ${again.cursor}`);
  }
  if (PROXY === 'haproxy') {
    await waitFor(() => /ssehub_cluster\/hub2 is DOWN/.test(readFileSync(PROXY_LOG, 'utf8')), 10000, 'HAProxy to mark hub2 DOWN');
    log(`${PROXY}: HAProxy marked hub2 DOWN`);
  }
  const late = Array.from({ length: 3 }, (_, i) => subscriber(`late${i}`, subSession, topic));
  everyone.push(...late);
  await openAll(late, 'subscribers opened after the kill');
  const lateFrom = acked.length;
  await publishSeq(5, 'after kill, late subscribers open');
  await waitFor(() => everyone.every((s) => acked.slice(subs.includes(s) ? 0 : lateFrom).every((a) => s.idSet.has(a.id))), 10000, 'every update after the kill');
  await sleep(200);
  const order = subs.find((s) => !orphans.includes(s)).ids.slice();
  for (const [k, how] of [
    [3, 'header'],
    [20, 'lastEventID'],
    [order.length - 8, 'header'],
  ]) {
    const r = await resume(subSession, topic, order[k], order.length - k - 1, how);
    assert.equal(r.status, 200, `${PROXY}: resume (${how}) from #${k} answered ${r.status}`);
    assert.equal(r.resumedFrom, order[k], `${PROXY}: resume (${how}) from #${k} was not found in the index`);
    assert.deepEqual(r.ids, order.slice(k + 1), `${PROXY}: resume (${how}) from #${k} via ${r.route} replayed another sequence`);
    log(`${PROXY}: resumed (${how}) from #${k} on ${r.route.at(-1)}: ${r.ids.length} updates, exactly the ones that followed`);
  }

  // 3. hub3 loses Redis: /readyz 503 takes it out.
  const cut = node('hub3');
  const stranded = everyone.filter((s) => s.node() === cut.name);
  process.kill(RELAY_PID, 'SIGUSR1');
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${cut.port}/readyz`).catch(() => ({ status: 0 }))).status === 503,
    5000,
    'hub3 /readyz to answer 503',
  );
  log(`${PROXY}: hub3 cut from Redis: its /readyz answers 503 (its subscribers ${stranded.map((s) => s.name).join(', ') || 'none'} stay)`);
  if (PROXY === 'haproxy') {
    await waitFor(() => /ssehub_cluster\/hub3 is DOWN/.test(readFileSync(PROXY_LOG, 'utf8')), 10000, 'HAProxy to mark hub3 DOWN');
    log(`${PROXY}: HAProxy's health check marked hub3 DOWN`);
  } else {
    // nginx has no active checks: a GET answered 503 by hub3 is retried on
    // another node, and hub3 is out for fail_timeout. Subscribers resuming
    // with Last-Event-ID (which hub3 cannot look up without Redis) are held
    // open until one was sent to hub3: least_conn sends new ones to hub3 once
    // the other node holds as many streams.
    const held = [];
    try {
      for (let i = 0; i < 10 && !held.some((h) => h.route.includes(cut.name)); i++) {
        const h = await openStream(subSession, mercure({ topic }), { 'last-event-id': acked.at(-1).id });
        held.push(h);
        assert.equal(h.status, 200, `${PROXY}: a resumption answered ${h.status} via ${h.route}`);
      }
      const retriedOff = held.find((h) => h.route.includes(cut.name));
      assert.ok(retriedOff, `${PROXY}: no resumption went to hub3: ${held.map((h) => h.route).join('; ')}`);
      assert.notEqual(retriedOff.route.at(-1), cut.name);
      log(`${PROXY}: a resumption answered 503 by hub3 was retried: ${retriedOff.route.join(' -> ')} (200)`);
    } finally {
      for (const h of held) h.close();
    }
  }
  const cursor = acked.at(-1).id;
  const whileCut = await publishSeq(8, 'hub3 cut');
  for (const res of whileCut) {
    assert.ok(!res.route.includes(cut.name), `${PROXY}: a publish went to hub3 while it was out: ${res.route}`);
  }
  const resumed = await resume(subSession, topic, cursor, 8, 'header');
  assert.equal(resumed.status, 200, `${PROXY}: resume while hub3 was out answered ${resumed.status}`);
  assert.ok(!resumed.route.includes(cut.name), `${PROXY}: a resumption went to hub3 while it was out: ${resumed.route}`);
  assert.deepEqual(resumed.ids, acked.slice(-8).map((a) => a.id), `${PROXY}: resume while hub3 was out replayed another sequence`);
  log(`${PROXY}: while hub3 was out: 8 publishes and a resumption, all on ${[...new Set(whileCut.map((r) => r.route.at(-1)))]}`);
  process.kill(RELAY_PID, 'SIGUSR2');
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${cut.port}/readyz`).catch(() => ({ status: 0 }))).status === 200,
    8000,
    'hub3 to reach Redis again',
  );
  // Ready again means able to take publishes (hub3 may not have sent Redis
  // a command since the cut).
  {
    const data = `${PROXY} direct to hub3 ${n++}`;
    const res = await fetch(`http://127.0.0.1:${cut.port}/.well-known/mercure`, {
      method: 'POST',
      headers: { authorization: `Bearer ${PUBLISHER}` },
      body: new URLSearchParams({ topic, data, retry: '200' }),
    });
    const body = (await res.text()).trim();
    assert.equal(res.status, 200, `${PROXY}: hub3 answers /readyz 200 again, but a publish to it answered ${res.status}: ${body}`);
    acked.push({ id: body, data });
  }
  if (PROXY === 'haproxy') {
    await waitFor(() => /ssehub_cluster\/hub3 is UP/.test(readFileSync(PROXY_LOG, 'utf8')), 10000, 'HAProxy to mark hub3 UP');
    log(`${PROXY}: hub3 reached Redis again; HAProxy marked it UP`);
  }
  await publishSeq(3, 'hub3 back');

  // Every subscriber: every acknowledged update exactly once, in the one
  // order; an update whose publish failed either everywhere or nowhere.
  await waitFor(() => everyone.every((s) => acked.slice(subs.includes(s) ? 0 : lateFrom).every((a) => s.idSet.has(a.id))), 15000, 'every update everywhere');
  await sleep(300); // room for a duplicate to show up
  const final = subs.find((s) => !orphans.includes(s) && !stranded.includes(s)).events.slice();
  const ackedIds = new Set(acked.map((a) => a.id));
  const extra = final.filter((e) => !ackedIds.has(e.id));
  for (const e of extra) {
    assert.ok(ambiguous.has(e.data), `${PROXY}: delivered an update nobody published: ${JSON.stringify(e)}`);
  }
  if (ambiguous.size) log(`${PROXY}: of ${ambiguous.size} publish(es) that failed on the dead node, ${extra.length} had been appended (delivered everywhere, once)`);
  const finalIds = final.map((e) => e.id);
  const lateStart = finalIds.indexOf(acked[lateFrom].id);
  for (const s of everyone) {
    assert.deepEqual(duplicates(s.ids), [], `${PROXY}: ${s.name} got duplicates`);
    const expected = subs.includes(s) ? finalIds : finalIds.slice(lateStart);
    assert.deepEqual(s.ids, expected, `${PROXY}: ${s.name} (${s.attempts.map((a) => a.route.at(-1)).join(' -> ')}) saw another sequence`);
  }
  for (const s of everyone) s.es.close();
  subSession.close();
  pubSession.close();
  log(
    `${PROXY}: ${acked.length} updates acknowledged; ${everyone.length} subscribers (${orphans.length} moved off the killed node, ` +
      `${stranded.length} kept on the node cut from Redis) each got exactly theirs, once, in the same order`,
  );
}

check().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);

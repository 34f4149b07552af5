// The npm `eventsource` package (v4, a WHATWG EventSource for Node) against
// the hub: exact payloads, named events, ids, and resuming after the hub ends
// the stream when the subscriber token expires.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { EventSource } from 'eventsource';

import {
  TRICKY,
  normalized,
  once,
  publish,
  sleep,
  subscribeUrl,
  subscriberToken,
  uniqueTopic,
  waitFor,
} from './helpers.mjs';

const open = new Set();
after(() => {
  for (const es of open) es.close();
});

/** An EventSource that is open, with every `message` event recorded. */
async function connect(url, init) {
  const es = new EventSource(url, init);
  open.add(es);
  const messages = [];
  es.addEventListener('message', (e) => messages.push(e));
  await once(es, 'open', 10_000);
  return { es, messages };
}

test('tricky payloads arrive with exact data and lastEventId', async () => {
  const topic = uniqueTopic('eventsource-data');
  const { es, messages } = await connect(subscribeUrl(topic));
  const ids = [];
  for (const { data } of TRICKY) {
    ids.push(await publish({ topic, data }));
  }
  await waitFor(() => messages.length >= TRICKY.length, 10_000, 'every payload');
  await sleep(100);
  assert.equal(messages.length, TRICKY.length, 'no extra events');
  TRICKY.forEach(({ name, data }, i) => {
    assert.equal(messages[i].data, normalized(data), `data of "${name}"`);
    assert.equal(messages[i].lastEventId, ids[i], `lastEventId of "${name}"`);
    assert.equal(messages[i].type, 'message');
  });
  es.close();
});

test('a custom type fires the named listener only; a custom id is the lastEventId', async () => {
  const topic = uniqueTopic('eventsource-type');
  const { es, messages } = await connect(subscribeUrl(topic));
  const named = [];
  es.addEventListener('book-updated', (e) => named.push(e));
  let onmessage = 0;
  es.onmessage = () => onmessage++;

  const id = `urn:e2e:${Date.now()}`;
  assert.equal(await publish({ topic, data: 'typed\r\nline', type: 'book-updated', id }), id);
  const plain = await publish({ topic, data: 'untyped' });

  await waitFor(() => named.length === 1 && messages.length === 1, 10_000, 'both events');
  assert.equal(named[0].type, 'book-updated');
  assert.equal(named[0].data, 'typed\nline');
  assert.equal(named[0].lastEventId, id);
  assert.equal(messages[0].data, 'untyped');
  assert.equal(messages[0].lastEventId, plain);
  assert.equal(onmessage, 1, 'onmessage does not see the typed event');
  es.close();
});

test('updates go only to subscribers of their topic; private ones need a token', async () => {
  const topic = uniqueTopic('eventsource-private');
  const other = uniqueTopic('eventsource-other');
  const anonymous = await connect(subscribeUrl(topic));
  const authorized = await connect(
    subscribeUrl(topic, { authorization: subscriberToken([topic]) }),
  );
  await publish({ topic: other, data: 'elsewhere' });
  const secret = await publish({ topic, data: 'secret', private: true });
  const pub = await publish({ topic, data: 'public' });
  await waitFor(() => authorized.messages.length >= 2, 10_000, 'both updates');
  await waitFor(() => anonymous.messages.length >= 1, 10_000, 'the public update');
  await sleep(200);
  assert.deepEqual(
    authorized.messages.map((e) => [e.data, e.lastEventId]),
    [['secret', secret], ['public', pub]],
  );
  assert.deepEqual(anonymous.messages.map((e) => [e.data, e.lastEventId]), [['public', pub]]);
  anonymous.es.close();
  authorized.es.close();
});

test('after the token expires it reconnects with Last-Event-ID and gets what it missed, once', async () => {
  const topic = uniqueTopic('eventsource-resume');
  // The first connection carries a token expiring in 3 s: the hub ends the
  // stream then. Later connections carry a token without expiry.
  const requests = [];
  const fetchWithToken = (url, init) => {
    const u = new URL(url);
    const first = requests.length === 0;
    u.searchParams.set('authorization', subscriberToken([topic], first ? 3 : undefined));
    requests.push({ at: Date.now(), lastEventId: init.headers['Last-Event-ID'] });
    return fetch(u, init);
  };
  const { es, messages } = await connect(subscribeUrl(topic), { fetch: fetchWithToken });
  const connectedAt = Date.now();
  assert.equal(requests[0].lastEventId, undefined, 'no Last-Event-ID at first');

  // retry=1500 sets the client's reconnection delay: long enough to publish
  // while it is away.
  const before = [];
  before.push(await publish({ topic, data: 'before 0', private: true, retry: 1500 }));
  for (let i = 1; i < 3; i++) before.push(await publish({ topic, data: `before ${i}`, private: true }));
  await waitFor(() => messages.length === 3, 10_000, 'the first updates');

  const dropped = await once(es, 'error', 10_000);
  const droppedAt = Date.now();
  assert.equal(es.readyState, EventSource.CONNECTING, `reconnecting, not closed (${dropped.message})`);
  assert.ok(droppedAt - connectedAt <= 4_500, `stream ended ${droppedAt - connectedAt} ms after open`);

  const missed = [];
  for (let i = 0; i < 5; i++) missed.push(await publish({ topic, data: `missed ${i}`, private: true }));
  assert.equal(requests.length, 1, 'published while the client was away');

  await waitFor(() => messages.length >= 8, 10_000, 'the missed updates');
  const live = await publish({ topic, data: 'live', private: true });
  await waitFor(() => messages.length >= 9, 10_000, 'a live update after resuming');
  await sleep(300);

  assert.equal(requests.length, 2, 'exactly one reconnection');
  assert.equal(requests[1].lastEventId, before[2], 'Last-Event-ID is the last id received');
  const waited = requests[1].at - droppedAt;
  assert.ok(waited >= 1_300, `reconnected after ${waited} ms, retry asked for 1500`);
  assert.deepEqual(
    messages.map((e) => [e.data, e.lastEventId]),
    [
      ...before.map((id, i) => [`before ${i}`, id]),
      ...missed.map((id, i) => [`missed ${i}`, id]),
      ['live', live],
    ],
    'every update exactly once, in order',
  );
  es.close();
});

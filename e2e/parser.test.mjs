// The raw response of fetch() fed to `eventsource-parser` (v3): framing,
// fields, comments, and replay from a Last-Event-ID header.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createParser } from 'eventsource-parser';

import {
  TRICKY,
  normalized,
  publish,
  sleep,
  subscribeUrl,
  uniqueTopic,
  waitFor,
} from './helpers.mjs';

const controllers = new Set();
after(() => {
  for (const c of controllers) c.abort();
});

/** Opens a stream with fetch and parses it as it arrives. */
async function stream(url, headers = {}) {
  const controller = new AbortController();
  controllers.add(controller);
  const res = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const s = { res, events: [], comments: [], retries: [], raw: '', ended: false, error: null };
  const parser = createParser({
    onEvent: (e) => s.events.push(e),
    onComment: (c) => s.comments.push(c),
    onRetry: (r) => s.retries.push(r),
    onError: (e) => {
      s.error = e;
    },
  });
  (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        const text = decoder.decode(chunk, { stream: true });
        s.raw += text;
        parser.feed(text);
      }
    } catch (e) {
      if (e.name !== 'AbortError') s.error = e;
    }
    s.ended = true;
  })();
  s.close = () => controller.abort();
  return s;
}

test('response headers and the opening comment', async () => {
  const s = await stream(subscribeUrl(uniqueTopic('parser-open')));
  assert.equal(s.res.status, 200);
  assert.equal(s.res.headers.get('content-type'), 'text/event-stream');
  assert.equal(s.res.headers.get('cache-control'), 'no-cache');
  await waitFor(() => s.comments.length >= 1, 5_000, 'the opening comment');
  assert.equal(s.raw.startsWith(':'), true, `stream starts with a comment: ${JSON.stringify(s.raw)}`);
  assert.equal(s.events.length, 0);
  s.close();
});

test('tricky payloads parse to the exact data, id and event', async () => {
  const topic = uniqueTopic('parser-data');
  const s = await stream(subscribeUrl(topic));
  await waitFor(() => s.comments.length >= 1, 5_000, 'the opening comment');
  const sent = [];
  for (const [i, { name, data }] of TRICKY.entries()) {
    const type = i % 2 ? `type-${i}` : undefined;
    const id = await publish({ topic, data, type });
    sent.push({ name, data, type, id });
  }
  await waitFor(() => s.events.length >= sent.length, 10_000, 'every payload');
  await sleep(100);
  assert.equal(s.error, null);
  assert.equal(s.events.length, sent.length, 'no extra events');
  sent.forEach(({ name, data, type, id }, i) => {
    assert.deepEqual(
      { data: s.events[i].data, id: s.events[i].id, event: s.events[i].event },
      { data: normalized(data), id, event: type },
      `event "${name}"`,
    );
  });
  // Every line of the wire format ends with LF: no CR reaches a client.
  assert.equal(s.raw.includes('\r'), false, 'no CR on the wire');
  s.close();
});

test('retry is passed to the client', async () => {
  const topic = uniqueTopic('parser-retry');
  const s = await stream(subscribeUrl(topic));
  await waitFor(() => s.comments.length >= 1, 5_000, 'the opening comment');
  const id = await publish({ topic, data: 'with retry', retry: 2500 });
  await waitFor(() => s.events.length >= 1, 10_000, 'the event');
  assert.deepEqual(s.retries, [2500]);
  assert.equal(s.events[0].id, id);
  s.close();
});

test('Last-Event-ID replays what came after it, then goes live', async () => {
  const topic = uniqueTopic('parser-replay');
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await publish({ topic, data: `update ${i}` }));
  const s = await stream(subscribeUrl(topic), { 'last-event-id': ids[1] });
  assert.equal(s.res.headers.get('last-event-id'), ids[1]);
  await waitFor(() => s.events.length >= 3, 10_000, 'the replay');
  const live = await publish({ topic, data: 'live' });
  await waitFor(() => s.events.length >= 4, 10_000, 'the live update');
  await sleep(200);
  assert.deepEqual(
    s.events.map((e) => [e.data, e.id]),
    [
      ['update 2', ids[2]],
      ['update 3', ids[3]],
      ['update 4', ids[4]],
      ['live', live],
    ],
  );
  s.close();
});

test('lastEventID=earliest in the query replays the whole topic', async () => {
  const topic = uniqueTopic('parser-earliest');
  const ids = [await publish({ topic, data: 'a' }), await publish({ topic, data: 'b' })];
  const s = await stream(subscribeUrl(topic, { lastEventID: 'earliest' }));
  await waitFor(() => s.events.length >= 2, 10_000, 'the replay');
  assert.deepEqual(s.events.map((e) => e.id), ids);
  s.close();
});

test('an idle stream gets heartbeat comments', async () => {
  // run.sh starts the hub with --heartbeat 1s.
  const s = await stream(subscribeUrl(uniqueTopic('parser-heartbeat')));
  await waitFor(() => s.comments.length >= 3, 5_000, 'two heartbeats after the opening comment');
  assert.equal(s.events.length, 0);
  assert.equal(s.ended, false);
  s.close();
});

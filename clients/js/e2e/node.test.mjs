// The client in Node 20 (fetch reader, no sharing) against a real hub:
// Mercure 1.0 access tokens expiring every 3 s under continuous publishing,
// and bytes published and received by Node.
//
// Run by clients/js/test.sh (SSEHUB_BIN: the release binary).

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { client, publish, subscribe } from '../dist/index.js';
import { sign, startHub } from './hub.mjs';

const BINARY = process.env.SSEHUB_BIN;
if (!BINARY) throw new Error('SSEHUB_BIN is not set: run clients/js/test.sh');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

let hub;
before(async () => {
  hub = await startHub(BINARY, 'http://127.0.0.1:9');
});
after(async () => {
  await hub?.stop();
});

/** A Mercure 1.0 access token for the hub's plain URL, subscribing to `topics`, living `ttl` s. */
function accessToken(topics, ttl) {
  const exp = Math.floor(Date.now() / 1000) + ttl;
  const details = [
    {
      type: 'https://mercure.rocks/authorization-detail',
      actions: ['subscribe'],
      topics: topics.map((match) => ({ match })),
    },
  ];
  return sign({ iss: 'ssehub', aud: hub.plain, exp, authorization_details: details }, hub.secret, 'at+jwt');
}

test('1.0 access tokens expiring every 3 s under continuous publishing: no gap, no duplicate', { timeout: 60_000 }, async () => {
  const topic = `https://example.com/js/${randomUUID()}/node`;
  let tokens = 0;
  const received = [];
  const states = [];
  const options = {
    hub: hub.plain,
    token: () => {
      tokens++;
      return accessToken([topic], 3);
    },
    onState: (s) => states.push(s),
  };
  const unsubscribe = subscribe(topic, (e) => received.push(e.id), options);
  try {
    await waitFor(() => states.at(-1) === 'open', 10_000, 'open');
    const published = [];
    const until = Date.now() + 8000;
    while (Date.now() < until) {
      published.push(await publish(hub.plain, { topic, data: 'x' }, { token: hub.publisher }));
      await sleep(20);
    }
    await waitFor(() => received.length >= published.length, 10_000, 'every update');
    await sleep(200);
    assert.deepEqual(received, published);
    assert.deepEqual(states.slice(states.indexOf('open')), ['open']);
    assert.ok(tokens >= 3, `tokens: ${tokens}`);
  } finally {
    unsubscribe();
    client({ hub: hub.plain }).close();
  }
});

test('bytes published from Node arrive as the same bytes (0.x selectors, no token)', { timeout: 30_000 }, async () => {
  const topic = `https://example.com/js/${randomUUID()}/bytes`;
  const received = [];
  const unsubscribe = subscribe(`https://example.com/js/{run}/bytes`, (e) => received.push(e), {
    hub: hub.plain,
    protocol: 0,
    onState: () => {},
  });
  try {
    await waitFor(() => client({ hub: hub.plain }).state === 'open', 10_000, 'open');
    const sizes = [0, 1, 1000, 100_000];
    const sent = sizes.map((n) => randomBytes(n));
    for (const bytes of sent) await publish(hub.plain, { topic, data: new Uint8Array(bytes) }, { token: hub.publisher });
    await waitFor(() => received.length >= sent.length, 10_000, 'the binary updates');
    received.forEach((e, i) => {
      assert.ok(e.data instanceof Uint8Array, `update ${i} is bytes`);
      assert.ok(Buffer.from(e.data).equals(sent[i]), `update ${i}: the same ${sizes[i]} bytes`);
    });
  } finally {
    unsubscribe();
    client({ hub: hub.plain }).close();
  }
});

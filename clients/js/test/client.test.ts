// The client against a fake hub on a loopback port: selector switches,
// token renewal, lost history, refusals, reconnection, and pages sharing one
// stream through the heartbeat election (Node has BroadcastChannel but no
// Web Locks; the browser tests cover Web Locks).

import { afterEach, beforeEach, describe, expect, test } from 'vitest';

import { Client, type HubEvent } from '../src/client.js';
import { client as pageClient, subscribe } from '../src/index.js';
import type { State } from '../src/stream.js';
import { FakeHub, fakeToken } from './fakehub.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Publishes to `topics` in turn every few ms until stopped; remembers the ids per topic. */
function publisher(hub: FakeHub, topics: string[]) {
  const ids = new Map(topics.map((t) => [t, [] as string[]]));
  let running = true;
  let n = 0;
  const done = (async () => {
    while (running) {
      const topic = topics[n++ % topics.length];
      ids.get(topic)!.push(hub.publish(topic, `${topic} #${n}`));
      await sleep(3);
    }
  })();
  return {
    ids,
    async stop() {
      running = false;
      await done;
    },
  };
}

/**
 * Counts the requests the client has in flight (sent, and neither aborted,
 * failed nor read to their end), through a wrapped `fetch`: what the client
 * holds, not what the hub has noticed yet (a socket it closed may still look
 * open there).
 */
function countRequests() {
  const real = globalThis.fetch;
  const count = { calls: 0, now: 0, max: 0 };
  globalThis.fetch = async (input, init) => {
    count.calls++;
    count.max = Math.max(count.max, ++count.now);
    let over = false;
    const end = (): void => {
      if (!over) count.now--;
      over = true;
    };
    init?.signal?.addEventListener('abort', end);
    try {
      const response = await real(input, init);
      if (response.status !== 200 || !response.body) {
        end();
        return response;
      }
      const body = response.body.pipeThrough(new TransformStream({ flush: end }));
      return new Response(body, { status: 200, headers: response.headers });
    } catch (error) {
      end();
      throw error;
    }
  };
  restores.push(() => (globalThis.fetch = real));
  return count;
}

function collector() {
  const events: HubEvent[] = [];
  return { events, ids: () => events.map((e) => e.id), push: (e: HubEvent) => events.push(e) };
}

let hub: FakeHub;
const clients: Client[] = [];
const restores: (() => void)[] = [];
const make = (options: Partial<ConstructorParameters<typeof Client>[0]> = {}) => {
  const client = new Client({ hub: hub.url, share: false, retry: 20, ...options });
  clients.push(client);
  return client;
};

beforeEach(async () => {
  hub = await new FakeHub().start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const restore of restores.splice(0)) restore();
  await hub.stop();
});

describe('one stream', () => {
  test('selector switches under continuous publishing: nothing lost, nothing twice, each subscription its own topics', async () => {
    const client = make();
    const requests = countRequests();
    const a = collector();
    const b = collector();
    const states: State[] = [];
    client.subscribe(['a'], a.push, { onState: (s) => states.push(s) });
    await waitFor(() => client.state === 'open', 'open');
    const pub = publisher(hub, ['a', 'b', 'c']);
    await waitFor(() => a.events.length > 20, 'events for a');
    const offB = client.subscribe(['b'], b.push);
    await waitFor(() => b.events.length > 20, 'events for b');
    for (let i = 0; i < 5; i++) {
      const offC = client.subscribe(['c'], () => {});
      await sleep(30);
      offC();
      await sleep(30);
    }
    offB();
    await sleep(50);
    await pub.stop();
    const wantA = pub.ids.get('a')!;
    await waitFor(() => a.events.length >= wantA.length, 'every a');
    await sleep(50);
    expect(a.ids()).toEqual(wantA);
    expect(a.events.every((e) => e.matched?.join() === 'a')).toBe(true);
    // b: a contiguous run of b's updates, from its first to when it left.
    const wantB = pub.ids.get('b')!;
    const first = wantB.indexOf(b.ids()[0]);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(b.ids()).toEqual(wantB.slice(first, first + b.events.length));
    expect(b.events.every((e) => e.matched?.join() === 'b')).toBe(true);
    // Each of the 12 switches reopened the stream from the cursor (a reopening
    // superseded before its answer may never reach the hub), one request at a
    // time but for the overlap.
    expect(requests.calls).toBe(13);
    expect(hub.cursors.slice(1).every((c) => c && c.startsWith('id-'))).toBe(true);
    expect(requests.max).toBe(2);
    expect(states.filter((s) => s === 'connecting').length).toBe(1);
  });

  test('a switch while a reopening awaits its answer aborts that reopening', async () => {
    const client = make();
    const requests = countRequests();
    const c = collector();
    client.subscribe(['a'], () => {});
    await waitFor(() => client.state === 'open', 'open');
    hub.holding = true;
    client.subscribe(['b'], () => {});
    await waitFor(() => hub.held.size === 1, 'the reopening with b, held');
    client.subscribe(['c'], c.push);
    await waitFor(() => hub.received === 3, 'the reopening with c');
    expect(requests.max).toBe(2);
    await waitFor(() => hub.held.size === 1, 'the reopening with b closed by the client');
    hub.release();
    await waitFor(() => hub.open === 1 && requests.now === 1, 'one stream, with c');
    hub.publish('c', 'x');
    await waitFor(() => c.events.length === 1, 'the update to c');
    expect(client.state).toBe('open');
  });

  test('the hub dropping the stream: resumed from the cursor, nothing lost or twice', async () => {
    const client = make();
    const a = collector();
    client.subscribe(['a'], a.push);
    await waitFor(() => client.state === 'open', 'open');
    const pub = publisher(hub, ['a']);
    for (let i = 0; i < 5; i++) {
      await sleep(60);
      hub.dropAll();
    }
    await pub.stop();
    const want = pub.ids.get('a')!;
    await waitFor(() => a.events.length >= want.length, 'every update');
    await sleep(50);
    expect(a.ids()).toEqual(want);
    expect(hub.cursors.length).toBeGreaterThanOrEqual(6);
  });

  test('routed by the matched lines: each subscription its own selectors, once', async () => {
    const client = make();
    const a = collector();
    const ab = collector();
    client.subscribe(['a'], a.push);
    client.subscribe(['a', 'b'], ab.push);
    await waitFor(() => client.state === 'open', 'open');
    hub.publish('a', 'a 1');
    hub.publish('b', 'b 1');
    await waitFor(() => ab.events.length === 2, 'both for ab');
    await sleep(50);
    expect(a.events.map((e) => [e.data, e.matched])).toEqual([['a 1', ['a']]]);
    expect(ab.events.map((e) => [e.data, e.matched])).toEqual([
      ['a 1', ['a']],
      ['b 1', ['b']],
    ]);
  });

  test('a hub that names no selector: every subscription gets every event', async () => {
    hub.namesMatched = false;
    const client = make();
    const a = collector();
    const b = collector();
    client.subscribe(['a'], a.push);
    client.subscribe(['b'], b.push);
    await waitFor(() => client.state === 'open', 'open');
    hub.publish('a', 'a 1');
    hub.publish('b', 'b 1');
    await waitFor(() => a.events.length === 2 && b.events.length === 2, 'both each');
    expect(a.events.map((e) => e.matched)).toEqual([undefined, undefined]);
  });

  test('binary data arrives as bytes', async () => {
    const client = make();
    const a = collector();
    client.subscribe(['a'], a.push);
    await waitFor(() => client.state === 'open', 'open');
    hub.publish('a', 'data:application/octet-stream;base64,AAEC/w==');
    await waitFor(() => a.events.length === 1, 'the event');
    expect(a.events[0].data).toEqual(Uint8Array.of(0, 1, 2, 255));
  });
});

describe('subscribe()', () => {
  test("shares the page's client of a hub, made again once closed", async () => {
    const a = collector();
    const b = collector();
    const offA = subscribe('a', a.push, { hub: hub.url, share: false });
    const offB = subscribe(['b'], b.push, { hub: hub.url, share: false });
    const shared = pageClient({ hub: hub.url });
    await waitFor(() => shared.state === 'open' && hub.open === 1, 'one stream');
    hub.publish('a', 'x');
    hub.publish('b', 'y');
    await waitFor(() => a.events.length === 1 && b.events.length === 1, 'one event each');
    expect(hub.maxOpen).toBe(1);
    offA();
    offB();
    await waitFor(() => hub.open === 0, 'no stream left');
    shared.close();
    expect(pageClient({ hub: hub.url })).not.toBe(shared);
    pageClient({ hub: hub.url }).close();
  });
});

describe('resuming', () => {
  test('from a stored id', async () => {
    hub.publish('a', '1');
    const second = hub.publish('a', '2');
    hub.publish('a', '3');
    const client = make({ lastEventId: second });
    const a = collector();
    let lost = 0;
    client.subscribe(['a'], a.push, { onLost: () => lost++ });
    await waitFor(() => a.events.length === 1, 'the update after the stored id');
    expect(a.events[0].data).toBe('3');
    expect(hub.cursors).toEqual([second]);
    expect(lost).toBe(0);
  });

  test('from a stored id the hub no longer knows: lost history', async () => {
    hub.publish('a', '1');
    const client = make({ lastEventId: 'gone' });
    const a = collector();
    let lost = 0;
    client.subscribe(['a'], a.push, { onLost: () => lost++ });
    await waitFor(() => lost === 1 && a.events.length === 1, 'lost, then the replay');
  });

  test('a silent stream is reopened by the watchdog, from its cursor', async () => {
    const client = make({ timeout: 150 });
    const a = collector();
    client.subscribe(['a'], a.push);
    await waitFor(() => client.state === 'open', 'open');
    const pub = publisher(hub, ['a']);
    await sleep(100);
    await pub.stop();
    // The fake hub sends no heartbeat: the idle stream goes silent.
    await waitFor(() => hub.cursors.length >= 3, 'two reopenings');
    hub.publish('a', 'after');
    await waitFor(() => a.events.at(-1)?.data === 'after', 'the update after');
    expect(a.ids()).toEqual([...pub.ids.get('a')!, a.events.at(-1)!.id]);
  });
});

describe('tokens', () => {
  test('renewed before exp under continuous publishing: no gap, no duplicate, never seen reconnecting', async () => {
    hub.requireToken = true;
    let issued = 0;
    const client = make({
      token: () => {
        issued++;
        return fakeToken(Date.now() + 1200);
      },
    });
    const a = collector();
    const states: State[] = [];
    client.subscribe(['a'], a.push, { onState: (s) => states.push(s) });
    await waitFor(() => client.state === 'open', 'open');
    const pub = publisher(hub, ['a']);
    await sleep(4000);
    await pub.stop();
    const want = pub.ids.get('a')!;
    await waitFor(() => a.events.length >= want.length, 'every update');
    await sleep(50);
    expect(a.ids()).toEqual(want);
    expect(issued).toBeGreaterThanOrEqual(4);
    expect(states).toEqual(['closed', 'connecting', 'open']);
  });

  test('a refused static token closes the stream', async () => {
    hub.requireToken = true;
    const client = make({ token: fakeToken(Date.now() - 1000) });
    client.subscribe(['a'], () => {});
    await waitFor(() => hub.cursors.length === 0 && client.state === 'closed', 'closed', 5000);
  });

  test('a refused token from a provider is replaced', async () => {
    hub.requireToken = true;
    let issued = 0;
    const client = make({ token: () => fakeToken(Date.now() + (issued++ === 0 ? -1000 : 60_000)) });
    client.subscribe(['a'], () => {});
    await waitFor(() => client.state === 'open', 'open');
    expect(issued).toBe(2);
  });
});

describe('history and refusals', () => {
  test('an unknown cursor is reported as lost history', async () => {
    const client = make();
    const a = collector();
    let lost = 0;
    client.subscribe(['a'], a.push, { onLost: () => lost++ });
    await waitFor(() => client.state === 'open', 'open');
    hub.publish('a', '1');
    await waitFor(() => a.events.length === 1, 'first');
    hub.forget();
    await waitFor(() => lost === 1, 'lost');
    hub.publish('a', '2');
    await waitFor(() => a.events.length === 2, 'second');
    expect(hub.cursors.at(-1)).toBe('id-1');
  });

  test('204 ends the stream for good', async () => {
    hub.refuseWith = 204;
    const client = make();
    const states: State[] = [];
    client.subscribe(['a'], () => {}, { onState: (s) => states.push(s) });
    await waitFor(() => states.at(-1) === 'closed', 'closed');
  });

  test('503 is retried', async () => {
    hub.refuseWith = 503;
    const client = make();
    client.subscribe(['a'], () => {});
    await sleep(200);
    expect(client.state).toBe('connecting');
    hub.refuseWith = undefined;
    await waitFor(() => client.state === 'open', 'open');
  });
});

describe('pages sharing one stream (heartbeat election over BroadcastChannel)', () => {
  test('one stream for three pages; the leader leaves under publishing: no loss, no duplicate', async () => {
    const pages = [0, 1, 2].map(() => make({ share: true }));
    const got = pages.map(() => collector());
    const all = pages.map(() => collector());
    pages.forEach((p, i) => {
      p.subscribe([`own${i}`], got[i].push);
      p.subscribe(['all'], all[i].push);
    });
    await waitFor(() => pages.every((p) => p.state === 'open'), 'every page open');
    await sleep(1500);
    expect(hub.open).toBe(1);
    const pub = publisher(hub, ['all', 'own0', 'own1', 'own2']);
    await sleep(300);
    const leader = pages.findIndex((p) => p.leader);
    expect(pages.filter((p) => p.leader).length).toBe(1);
    expect(leader).toBeGreaterThanOrEqual(0);
    pages[leader].close();
    await sleep(4500);
    await pub.stop();
    const rest = [0, 1, 2].filter((i) => i !== leader);
    const want = pub.ids.get('all')!;
    await waitFor(() => rest.every((i) => all[i].events.length >= want.length), 'every update in every page');
    await sleep(100);
    for (const i of rest) {
      expect(all[i].ids()).toEqual(want);
      expect(got[i].ids()).toEqual(pub.ids.get(`own${i}`));
    }
    expect(rest.filter((i) => pages[i].leader).length).toBe(1);
    expect(hub.open).toBe(1);
  });
});

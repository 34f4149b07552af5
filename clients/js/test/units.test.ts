// The pure parts: selectors, discovery links, the binary
// convention, backoff and token expiry.

import { describe, expect, test } from 'vitest';

import { delay, MAX_DELAY } from '../src/backoff.js';
import { BINARY_PREFIX, decodeData, encodeBinary } from '../src/binary.js';
import { mercureLinks } from '../src/discover.js';
import { param, text, union } from '../src/selectors.js';
import { expiry, renewalMargin, Tokens } from '../src/token.js';

describe('selectors', () => {
  test('are written in the generation asked for', () => {
    expect(param('https://a/1', 0)).toEqual(['topic', 'https://a/1']);
    expect(param('https://a/1', 1)).toEqual(['match', 'https://a/1']);
    expect(param({ pattern: 'https://a/:id' }, 0)).toEqual(['match_urlpattern', 'https://a/:id']);
  });

  test('union removes repeats, in a stable order', () => {
    expect(union([['b', 'a'], ['a', { pattern: 'p' }], ['b']])).toEqual([{ pattern: 'p' }, 'a', 'b']);
    expect(union([['a', 'b']])).toEqual(union([['b', 'a']]));
  });

  test('a selector is named back by the text it is sent as', () => {
    expect(text('https://a/{id}')).toBe('https://a/{id}');
    expect(text({ pattern: 'https://a/:id' })).toBe('https://a/:id');
    expect(param({ pattern: 'https://a/:id' }, 1)[1]).toBe(text({ pattern: 'https://a/:id' }));
  });
});

describe('discovery links', () => {
  test('rel=mercure, resolved against the resource', () => {
    const link = '</other>; rel="preload", <https://hub.example/.well-known/mercure>; rel="mercure"; last-event-id="x"';
    expect(mercureLinks(link, 'https://app.example/books/1')).toEqual(['https://hub.example/.well-known/mercure']);
    expect(mercureLinks('</.well-known/mercure>; rel=mercure', 'https://app.example/a')).toEqual([
      'https://app.example/.well-known/mercure',
    ]);
    expect(mercureLinks('<https://h/>; rel="self mercure"', 'https://a/')).toEqual(['https://h/']);
    expect(mercureLinks('<https://h/>; rel="self"', 'https://a/')).toEqual([]);
    expect(mercureLinks(null, 'https://a/')).toEqual([]);
  });
});

describe('the binary convention', () => {
  test('round trip of random bytes, large ones too', () => {
    for (const size of [0, 1, 2, 3, 255, 70_000]) {
      const bytes = new Uint8Array(size).map(() => Math.floor(Math.random() * 256));
      const data = encodeBinary(bytes);
      expect(data.startsWith(BINARY_PREFIX)).toBe(true);
      expect(Buffer.from(data.slice(BINARY_PREFIX.length), 'base64').equals(bytes)).toBe(true);
      const decoded = decodeData(data);
      expect(decoded).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(decoded as Uint8Array).equals(bytes)).toBe(true);
    }
  });

  test('other data stays text', () => {
    expect(decodeData('hello')).toBe('hello');
    expect(decodeData(`${BINARY_PREFIX}not base64!`)).toBe(`${BINARY_PREFIX}not base64!`);
  });
});

describe('backoff', () => {
  test('the first delay is the retry value, later ones jittered and bounded', () => {
    expect(delay(0, 1000)).toBe(1000);
    expect(delay(1, 1000, () => 0)).toBe(1000);
    expect(delay(1, 1000, () => 0.999999)).toBe(2000);
    expect(delay(3, 1000, () => 0)).toBe(4000);
    expect(delay(30, 1000, () => 0.999999)).toBe(MAX_DELAY);
    for (let i = 0; i < 100; i++) {
      const d = delay(4, 500);
      expect(d).toBeGreaterThanOrEqual(4000);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });
});

describe('tokens', () => {
  const jwt = (payload: object) => `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;

  test('exp is read, in milliseconds', () => {
    expect(expiry(jwt({ exp: 1700000000 }))).toBe(1700000000000);
    expect(expiry(jwt({}))).toBeUndefined();
    expect(expiry('garbage')).toBeUndefined();
  });

  test('the renewal margin', () => {
    expect(renewalMargin(3_600_000)).toBe(30_000);
    expect(renewalMargin(10_000)).toBe(2_000);
    expect(renewalMargin(2_000)).toBe(500);
    expect(renewalMargin(600)).toBe(300);
  });

  test('a provider is asked again only when the token is due or refused', async () => {
    let calls = 0;
    const tokens = new Tokens(() => jwt({ exp: Date.now() / 1000 + 3600, n: ++calls }));
    await tokens.get();
    await tokens.get();
    expect(calls).toBe(1);
    expect(tokens.dueIn()).toBeGreaterThan(3_500_000);
    await tokens.get(true);
    expect(calls).toBe(2);
    const fixed = new Tokens('abc');
    expect(await fixed.get(true)).toBe('abc');
    expect(fixed.dueIn()).toBe(Infinity);
  });
});

// The parser and the fetch reader against the web-platform-tests
// event-stream vectors the hub's own parser is tested with.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { HttpError, isEventStream, readStream } from '../src/reader.js';
import { createParser, type SseEvent } from '../src/sse.js';

interface Vector {
  name: string;
  kind: string;
  status: number;
  content_type: string;
  stream_b64: string;
  chunks?: string[];
  expected: { type: string; data: string; lastEventId: string }[];
}

const vectors: Vector[] = JSON.parse(
  readFileSync(new URL('../../../crates/ssehub/tests/data/wpt-eventsource-vectors.json', import.meta.url), 'utf8'),
);

/** Parses `pieces` of bytes as a reader does: UTF-8 decoded in stream mode. */
function parse(pieces: Uint8Array[]): { events: SseEvent[]; retries: number[] } {
  const events: SseEvent[] = [];
  const retries: number[] = [];
  const feed = createParser({ event: (e) => events.push(e), retry: (ms) => retries.push(ms) });
  const decoder = new TextDecoder();
  for (const piece of pieces) feed(decoder.decode(piece, { stream: true }));
  return { events, retries };
}

const shape = (events: SseEvent[]) => events.map(({ type, data, id }) => ({ type, data, lastEventId: id }));
const readable = vectors.filter((v) => Number(v.status) === 200 && isEventStream(v.content_type));

describe('WHATWG parsing (web-platform-tests vectors)', () => {
  test('the vectors are there', () => {
    expect(vectors.length).toBe(52);
    expect(readable.length).toBeGreaterThan(30);
  });

  for (const v of readable) {
    const bytes = Buffer.from(v.stream_b64, 'base64');
    test(`${v.name}: whole`, () => {
      expect(shape(parse([bytes]).events)).toEqual(v.expected);
    });
    test(`${v.name}: byte by byte`, () => {
      expect(shape(parse([...bytes].map((b) => Uint8Array.of(b))).events)).toEqual(v.expected);
    });
    if (v.chunks) {
      test(`${v.name}: its chunks`, () => {
        const encoder = new TextEncoder();
        expect(shape(parse(v.chunks!.map((c) => encoder.encode(c))).events)).toEqual(v.expected);
      });
    }
  }

  test('every split point of CRLF-heavy text', () => {
    const text = 'data:a\r\n\r\ndata:b\r\rdata:c\n\nid:7\r\ndata:d\r\n\r\n';
    const want = shape(parse([new TextEncoder().encode(text)]).events);
    expect(want.map((e) => e.data)).toEqual(['a', 'b', 'c', 'd']);
    for (let i = 0; i <= text.length; i++) {
      const encoder = new TextEncoder();
      expect(shape(parse([encoder.encode(text.slice(0, i)), encoder.encode(text.slice(i))]).events)).toEqual(want);
    }
  });

  test('retry: only digits count', () => {
    expect(parse([new TextEncoder().encode('retry:03000\nretry:1000x\nretry:\ndata:x\n\n')]).retries).toEqual([3000]);
  });

  test('matched lines are collected per event once the stream opened with :ssehub_matched', () => {
    const frames = 'matched: a\ndata:0\n\n:ssehub_matched\n\nmatched: a\nmatched:b\ndata:1\n\ndata:2\n\n';
    const { events } = parse([new TextEncoder().encode(frames)]);
    expect(events.map((e) => e.matched)).toEqual([undefined, ['a', 'b'], []]);
    expect(events.map((e) => e.data)).toEqual(['0', '1', '2']);
  });
});

describe('the fetch reader (status and content type vectors)', () => {
  let base = '';
  const server = createServer((req, res) => {
    const v = vectors[Number(new URL(req.url!, 'http://x').searchParams.get('v'))];
    res.writeHead(Number(v.status), { 'content-type': v.content_type });
    res.end(Buffer.from(v.stream_b64, 'base64'));
  });
  beforeAll(async () => {
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

  vectors.forEach((v, i) => {
    if (!['parse', 'status', 'content-type', 'basic'].includes(v.kind)) return;
    test(v.name, async () => {
      const events: SseEvent[] = [];
      let opened = false;
      const reading = readStream(`${base}?v=${i}`, {}, {
        open: () => (opened = true),
        progress: () => {},
        event: (e) => events.push(e),
        retry: () => {},
      });
      if (readable.includes(v)) {
        await reading;
        expect(opened).toBe(true);
        expect(shape(events)).toEqual(v.expected);
      } else {
        await expect(reading).rejects.toBeInstanceOf(HttpError);
        expect(opened).toBe(false);
        expect(events).toEqual([]);
      }
    });
  });
});

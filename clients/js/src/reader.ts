/** One SSE response read with fetch: status and type checked, body parsed. */

import { createParser, type SseSink } from './sse.js';

/** The hub answered something other than a readable event stream. */
export class HttpError extends Error {
  /** The HTTP status (200 when only the content type was wrong). */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
  }
}

/** True when a Content-Type header names `text/event-stream` (parameters allowed). */
export function isEventStream(contentType: string | null): boolean {
  return (contentType ?? '').split(';')[0].trim().toLowerCase() === 'text/event-stream';
}

/** What a reader tells about its response, besides the events. */
export interface ReadSink extends SseSink {
  /** The response is a 200 event stream; its body is about to be read. */
  open(response: Response): void;
  /** A piece of the body arrived (events, comments or heartbeats). */
  progress(): void;
}

/**
 * Fetches `url` and reads its event stream until the body ends (resolves) or
 * fails or `init.signal` aborts it (rejects). A status other than 200 or
 * another content type rejects with an {@link HttpError} before `open`.
 */
export async function readStream(url: string, init: RequestInit, sink: ReadSink): Promise<void> {
  const response = await fetch(url, init);
  if (response.status !== 200 || !isEventStream(response.headers.get('content-type'))) {
    await response.body?.cancel().catch(() => {});
    throw new HttpError(response.status, `the hub answered ${response.status} ${response.headers.get('content-type') ?? ''}`);
  }
  sink.open(response);
  const feed = createParser(sink);
  const decoder = new TextDecoder();
  const body = response.body;
  if (!body) return;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    sink.progress();
    feed(decoder.decode(value, { stream: true }));
  }
}

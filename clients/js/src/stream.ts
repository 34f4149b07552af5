/**
 * The one stream to the hub: reopened make-before-break when its selectors
 * change or its token is renewed, resumed from its cursor after a failure.
 */

import { delay } from './backoff.js';
import { HttpError, readStream } from './reader.js';
import { key, param, type Protocol, type Selector } from './selectors.js';
import type { SseEvent } from './sse.js';
import type { Tokens } from './token.js';

/** The connection state an application sees. */
export type State = 'connecting' | 'open' | 'closed';

/** What a {@link HubStream} needs. */
export interface StreamOptions {
  /** The hub's subscribe URL (`.../.well-known/mercure`). */
  hub: string;
  /** The generation plain string selectors are written in. */
  protocol: Protocol;
  /** Where tokens come from (sent as `Authorization: Bearer`). */
  tokens: Tokens;
  /** Send cookies to the hub (cookie-borne tokens). */
  credentials: boolean;
  /** Reconnection time until the hub sends `retry:`, in milliseconds. */
  retry: number;
  /** A stream silent this long (ms; no event, comment or heartbeat) is reopened; 0: never. */
  timeout: number;
}

/** Where a {@link HubStream} reports. */
export interface StreamSink {
  /** An event, in log order; after a reopen the replay may repeat some (drop them by id). */
  event(event: SseEvent): void;
  /** The stream's state changed (`error`: why it is reconnecting or closed). */
  state(state: State, error?: unknown): void;
  /** The hub named the position the stream starts after (its `Last-Event-ID` answer). */
  cursor(id: string): void;
  /** The cursor sent was unknown to the hub: what followed it may be lost. */
  lost(): void;
}

/** The stream of a set of selectors (one fetch at a time, two during a switch). */
export class HubStream {
  private selectors: Selector[] = [];
  private wanted = '';
  /** The newest attempt; it replaces `current` once its response arrives. */
  private latest: AbortController | undefined;
  /** The attempt delivering events. */
  private current: AbortController | undefined;
  private attempts = 0;
  private refused = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private retry: number;

  /** `cursor`: the id to resume after (undefined: from now on). */
  constructor(
    private readonly options: StreamOptions,
    private readonly sink: StreamSink,
    public cursor?: string,
  ) {
    this.retry = options.retry;
  }

  /** Streams `selectors` from now on (none: no stream); reopens when they change. */
  set(selectors: Selector[]): void {
    const wanted = selectors.map(key).join('\n');
    if (wanted === this.wanted) return;
    this.wanted = wanted;
    this.selectors = selectors;
    this.wake(0);
  }

  /** Ends the stream for good. */
  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.latest?.abort();
    this.current?.abort();
    this.latest = this.current = undefined;
    this.sink.state('closed');
  }

  private wake(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), ms);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    if (!this.selectors.length) {
      this.latest?.abort();
      this.current?.abort();
      this.latest = this.current = undefined;
      this.sink.state('closed');
      return;
    }
    const attempt = new AbortController();
    // A reopening not answered yet is superseded: aborted, so that only the
    // stream in use and this attempt are ever in flight.
    if (this.latest !== this.current) this.latest?.abort();
    this.latest = attempt;
    // The watchdog: a connection that went silent (a dead network path
    // sends no FIN) is given up and reopened.
    let silent: ReturnType<typeof setTimeout> | undefined;
    const alive = (): void => {
      clearTimeout(silent);
      if (this.options.timeout) silent = setTimeout(() => attempt.abort(), this.options.timeout);
    };
    if (!this.current) this.sink.state('connecting');
    try {
      const token = await this.options.tokens.get(this.refused);
      if (attempt !== this.latest) return;
      const url = new URL(this.options.hub);
      for (const selector of this.selectors) url.searchParams.append(...param(selector, this.options.protocol));
      // ssehub then names, in each event, the selectors it matched.
      url.searchParams.append('ssehub_matched', '1');
      // An empty Last-Event-ID asks for "from now on" and the hub answers
      // with the id it starts after: an anchor before any event arrives.
      const sent = this.cursor ?? '';
      const headers: Record<string, string> = { accept: 'text/event-stream', 'last-event-id': sent };
      if (token) headers.authorization = `Bearer ${token}`;
      await readStream(
        url.href,
        {
          headers,
          signal: attempt.signal,
          cache: 'no-store',
          credentials: this.options.credentials ? 'include' : 'same-origin',
        },
        {
          open: (response) => {
            alive();
            this.opened(attempt, response, sent);
          },
          progress: alive,
          event: (event) => {
            if (attempt !== this.current) return;
            if (event.id) this.cursor = event.id;
            this.sink.event(event);
          },
          retry: (ms) => {
            if (attempt === this.current) this.retry = ms;
          },
        },
      );
      this.ended(attempt);
    } catch (error) {
      this.ended(attempt, error);
    }
    clearTimeout(silent);
  }

  private opened(attempt: AbortController, response: Response, sent: string): void {
    if (attempt !== this.latest) {
      attempt.abort();
      return;
    }
    if (this.current !== attempt) this.current?.abort();
    this.current = attempt;
    this.attempts = 0;
    this.refused = false;
    const anchor = response.headers.get('last-event-id');
    if (anchor !== null) {
      if (anchor === 'earliest' && sent && sent !== 'earliest') this.sink.lost();
      this.cursor = anchor;
      this.sink.cursor(anchor);
    }
    this.sink.state('open');
    const due = this.options.tokens.dueIn();
    if (due < Infinity) this.wake(Math.min(due, 2 ** 31 - 1));
  }

  private ended(attempt: AbortController, error?: unknown): void {
    if (attempt === this.current) this.current = undefined;
    if (attempt !== this.latest || this.stopped) {
      // The stream in use ended while its replacement is on its way.
      if (!this.current && this.latest && !this.stopped) this.sink.state('connecting');
      return;
    }
    this.latest = undefined;
    if (error instanceof HttpError) {
      if ((error.status === 401 || error.status === 403) && this.options.tokens.renewable) {
        this.refused = true;
      } else if (error.status < 500 && error.status !== 429) {
        // Per WHATWG, a non-200 answer or another content type is final.
        this.current?.abort();
        this.current = undefined;
        this.sink.state('closed', error);
        return;
      }
    }
    if (!this.current) this.sink.state('connecting', error);
    this.wake(delay(this.attempts++, this.retry));
  }
}

/**
 * The client of one hub in one page: its subscriptions, the events routed
 * to them, and the sharing of one stream by every page of the origin (the
 * leader holds it and relays its events over a BroadcastChannel).
 */

import { decodeData } from './binary.js';
import { text, union, type Protocol, type Selector } from './selectors.js';
import type { SseEvent } from './sse.js';
import { HubStream, type State } from './stream.js';
import { elect, type Election } from './tabs.js';
import { Tokens, type TokenSource } from './token.js';

/** An event delivered to a subscription. */
export interface HubEvent {
  /** The event id (the cursor to resume after). */
  id: string;
  /** The SSE type (`message` unless the publisher set one). */
  type: string;
  /** The data, or its bytes when it follows the binary convention. */
  data: string | Uint8Array;
  /**
   * The subscription's selectors the hub named for this event (its
   * `matched:` lines); undefined from a hub that names none, which sends
   * every event to every subscription.
   */
  matched?: Selector[];
}

/** How a page reaches a hub; the first subscription to a hub decides for the page. */
export interface ClientOptions {
  /** The hub's URL (`https://hub.example.com/.well-known/mercure`); see `discover`. */
  hub: string;
  /** A subscriber token, or a function called for a new one before each expires. */
  token?: TokenSource;
  /** The generation plain string selectors are written in: 1 (`match=`, default) or 0 (`topic=`). */
  protocol?: Protocol;
  /** Send cookies to the hub (a token in a cookie). */
  withCredentials?: boolean;
  /** Share one stream with the other pages of the origin (default: in documents, true). */
  share?: boolean;
  /** Deliver data following the binary convention as a Uint8Array (default true). */
  binary?: boolean;
  /** Reconnection time until the hub sends `retry:` (ms, default 1000). */
  retry?: number;
  /** Reopen a stream silent this long (ms, default 60000: four of the hub's default heartbeats); 0: never. */
  timeout?: number;
  /** The id to resume after (e.g. the last one a previous visit stored); default: from now on. */
  lastEventId?: string;
}

/** What one subscription is told besides its events. */
export interface Listeners {
  /** The shared stream's state: the current one at once, then each change. */
  onState?: (state: State) => void;
  /** The hub did not know the cursor: events may have been missed. */
  onLost?: () => void;
}

interface Subscription extends Listeners {
  selectors: Selector[];
  onEvent: (event: HubEvent) => void;
}

/** Messages between the pages sharing a hub. */
type Message =
  | { t: 'subs'; tab: string; sels: Selector[] }
  | { t: 'ask'; tab: string }
  | { t: 'hb'; tab: string }
  | { t: 'ev'; e: SseEvent }
  | { t: 'cur'; id: string }
  | { t: 'st'; s: State }
  | { t: 'lost' };

/** Ids remembered to drop repeated events. */
const REMEMBERED = 4096;

/** A page's client of one hub. */
export class Client {
  /** This page's id among the pages sharing the hub. */
  readonly tab = Math.random().toString(36).slice(2) + Date.now().toString(36);
  /** The shared stream's state, as the leader last reported it. */
  state: State = 'closed';
  private readonly subscriptions = new Set<Subscription>();
  /** Every page's selectors, this one's included, so a new leader knows them all. */
  private readonly registry = new Map<string, Selector[]>();
  private readonly seen = new Set<string>();
  private readonly tokens: Tokens;
  private readonly protocol: Protocol;
  private readonly channel: BroadcastChannel | undefined;
  private readonly election: Election;
  private cursor: string | undefined;
  private stream: HubStream | undefined;
  /** True once {@link Client.close} was called. */
  closed = false;

  /** A client of `options.hub`; `subscribe()` and `client()` keep one per hub and page. */
  constructor(readonly options: ClientOptions) {
    this.cursor = options.lastEventId;
    this.tokens = new Tokens(options.token);
    this.protocol = options.protocol ?? 1;
    const share = options.share ?? typeof document !== 'undefined';
    if (share && typeof BroadcastChannel !== 'undefined') {
      this.channel = new BroadcastChannel(`ssehub ${options.hub}`);
      this.channel.onmessage = (message) => this.heard(message.data as Message);
    }
    const beat = this.channel && (() => this.post({ t: 'hb', tab: this.tab }));
    this.election = elect(`ssehub ${options.hub}`, this.tab, () => this.lead(), () => this.resign(), beat);
    this.post({ t: 'ask', tab: this.tab });
    if (typeof addEventListener === 'function' && typeof document !== 'undefined') {
      addEventListener('pagehide', this.hide);
      addEventListener('pageshow', this.show);
    }
  }

  /**
   * Adds a subscription to `selectors`; `onEvent` receives the events
   * matching one of them, `onState` the current state at once and then
   * each change. Returns the function that removes it.
   */
  subscribe(selectors: Selector[], onEvent: (event: HubEvent) => void, listeners: Listeners = {}): () => void {
    const subscription: Subscription = { ...listeners, selectors, onEvent };
    this.subscriptions.add(subscription);
    listeners.onState?.(this.state);
    this.announce();
    return () => {
      if (this.subscriptions.delete(subscription)) this.announce();
    };
  }

  /** True while this page is the leader, the one holding the stream. */
  get leader(): boolean {
    return !!this.stream;
  }

  /** Leaves the sharing and closes the stream if this page held it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.subscriptions.clear();
    this.hide();
    this.election.stop();
    this.resign();
    this.channel?.close();
    if (typeof removeEventListener === 'function') {
      removeEventListener('pagehide', this.hide);
      removeEventListener('pageshow', this.show);
    }
  }

  private readonly hide = (): void => this.post({ t: 'subs', tab: this.tab, sels: [] });
  private readonly show = (): void => this.announce();

  private post(message: Message): void {
    if (!this.closed || message.t === 'subs') this.channel?.postMessage(message);
  }

  private own(): Selector[] {
    return union([...this.subscriptions].map((s) => s.selectors));
  }

  private announce(): void {
    const sels = this.own();
    this.record(this.tab, sels);
    this.post({ t: 'subs', tab: this.tab, sels });
  }

  private record(tab: string, sels: Selector[]): void {
    if (sels.length) this.registry.set(tab, sels);
    else this.registry.delete(tab);
    this.stream?.set(union(this.registry.values()));
  }

  private heard(message: Message): void {
    switch (message.t) {
      case 'subs':
        return this.record(message.tab, message.sels);
      case 'ask': {
        const sels = this.own();
        if (sels.length) this.post({ t: 'subs', tab: this.tab, sels });
        if (this.stream) {
          this.post({ t: 'hb', tab: this.tab });
          if (this.cursor !== undefined) this.post({ t: 'cur', id: this.cursor });
          this.post({ t: 'st', s: this.state });
        }
        return;
      }
      case 'hb':
        return this.election.heard(message.tab);
      case 'ev':
        if (this.fresh(message.e)) this.deliver(message.e);
        return;
      case 'cur':
        this.cursor = message.id;
        return;
      case 'st':
        return this.setState(message.s);
      case 'lost':
        return this.lost();
    }
  }

  private lead(): void {
    const { options } = this;
    this.stream = new HubStream(
      {
        hub: options.hub,
        protocol: this.protocol,
        tokens: this.tokens,
        credentials: !!options.withCredentials,
        retry: options.retry ?? 1000,
        timeout: options.timeout ?? 60_000,
      },
      {
        event: (e) => {
          if (this.fresh(e)) {
            this.post({ t: 'ev', e });
            this.deliver(e);
          }
        },
        state: (s) => {
          this.post({ t: 'st', s });
          this.setState(s);
        },
        cursor: (id) => {
          this.cursor = id;
          this.post({ t: 'cur', id });
        },
        lost: () => {
          this.post({ t: 'lost' });
          this.lost();
        },
      },
      this.cursor,
    );
    this.stream.set(union(this.registry.values()));
  }

  private resign(): void {
    this.stream?.close();
    this.stream = undefined;
  }

  /** False for an event already delivered (by id); true, and remembered, otherwise. */
  private fresh(e: SseEvent): boolean {
    if (!e.id) return true;
    if (this.seen.has(e.id)) return false;
    this.seen.add(e.id);
    if (this.seen.size > REMEMBERED) this.seen.delete(this.seen.values().next().value!);
    this.cursor = e.id;
    return true;
  }

  /** Gives `e` to each subscription one of whose selectors the hub named (to all when it names none), once. */
  private deliver(e: SseEvent): void {
    const data = this.options.binary === false ? e.data : decodeData(e.data);
    for (const s of [...this.subscriptions]) {
      const matched = e.matched && s.selectors.filter((sel) => e.matched!.includes(text(sel)));
      if (!matched || matched.length) s.onEvent({ id: e.id, type: e.type, data, matched });
    }
  }

  private setState(state: State): void {
    if (state === this.state) return;
    this.state = state;
    for (const s of [...this.subscriptions]) s.onState?.(state);
  }

  private lost(): void {
    for (const s of [...this.subscriptions]) s.onLost?.();
  }
}

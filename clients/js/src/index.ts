/**
 * ssehub's JavaScript client: Mercure subscriptions of every page of an
 * origin share one stream, tokens are renewed without a gap, and bytes
 * travel as base64 `data:` URLs. See docs/client-js.md.
 */

import { Client, type ClientOptions, type HubEvent, type Listeners } from './client.js';
import type { Selector } from './selectors.js';

export { Client } from './client.js';
export type { ClientOptions, HubEvent, Listeners } from './client.js';
export type { Protocol, Selector } from './selectors.js';
export type { State } from './stream.js';
export type { SseEvent } from './sse.js';
export type { TokenSource } from './token.js';
export { publish } from './publish.js';
export type { PublishOptions, Update } from './publish.js';
export { discover, mercureLinks } from './discover.js';
export { BINARY_PREFIX, decodeData, encodeBinary } from './binary.js';

const clients = new Map<string, Client>();

/** Options of {@link subscribe}: the page's client options and the subscription's listeners. */
export type SubscribeOptions = ClientOptions & Listeners;

/**
 * The page's client of `options.hub`, created by the first call (whose
 * options it keeps) and again after it was closed.
 */
export function client(options: ClientOptions): Client {
  const hub = new URL(options.hub, globalThis.location?.href).href;
  let found = clients.get(hub);
  if (!found || found.closed) clients.set(hub, (found = new Client({ ...options, hub })));
  return found;
}

/**
 * Subscribes to `selectors` on the page's shared stream to `options.hub`;
 * `onEvent` receives each matching event once. Returns the function that
 * unsubscribes.
 */
export function subscribe(
  selectors: Selector | Selector[],
  onEvent: (event: HubEvent) => void,
  options: SubscribeOptions,
): () => void {
  const list = Array.isArray(selectors) ? selectors : [selectors];
  return client(options).subscribe(list, onEvent, { onState: options.onState, onLost: options.onLost });
}

/** Publishing from the client: a form POST to the hub, bytes per the binary convention. */

import { encodeBinary } from './binary.js';

/** An update to publish. */
export interface Update {
  /** The canonical topic, or the canonical one followed by alternates. */
  topic: string | string[];
  /** The payload; bytes are sent as a base64 `data:` URL (the binary convention). */
  data?: string | Uint8Array;
  /** Only subscribers whose token grants one of the topics receive it. */
  private?: boolean;
  /** The event id (the hub generates one when absent). */
  id?: string;
  /** The SSE `event:` type. */
  type?: string;
  /** The `retry:` the hub writes with it, in milliseconds. */
  retry?: number;
}

/** How to reach the hub when publishing. */
export interface PublishOptions {
  /** A publisher token, sent as `Authorization: Bearer`. */
  token?: string;
  /** Send cookies (a cookie-borne token; the hub must list the page in `--publish-origins`). */
  withCredentials?: boolean;
}

/**
 * Publishes `update` to the hub at `hub` and resolves with its id; rejects
 * with the hub's answer when it is not 200.
 */
export async function publish(hub: string, update: Update, options: PublishOptions = {}): Promise<string> {
  const body = new URLSearchParams();
  for (const topic of ([] as string[]).concat(update.topic)) body.append('topic', topic);
  const data = update.data;
  if (data !== undefined) body.set('data', typeof data === 'string' ? data : encodeBinary(data));
  if (update.private) body.set('private', 'on');
  if (update.id !== undefined) body.set('id', update.id);
  if (update.type !== undefined) body.set('type', update.type);
  if (update.retry !== undefined) body.set('retry', String(update.retry));
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await fetch(hub, {
    method: 'POST',
    headers,
    body,
    credentials: options.withCredentials ? 'include' : 'same-origin',
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`publish: the hub answered ${response.status}: ${text}`);
  return text;
}

// A small in-memory hub for the unit tests: exact-topic subscriptions
// (`match=` or `topic=`), Last-Event-ID as ssehub reads it (empty: from now,
// with the anchor answered; known: replay after it; unknown: `earliest` and a
// full replay), fake tokens whose expiry ends the stream, ssehub's
// `matched:` lines when asked (`ssehub_matched=1`) and enabled, a count
// of open streams, and requests held unanswered on demand.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Logged {
  id: string;
  topic: string;
  data: string;
}

/** A token the fake hub accepts until `expMs` (a JWT-shaped string, unsigned). */
export function fakeToken(expMs: number): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ exp: expMs / 1000 })}.x`;
}

function tokenExp(header: string | undefined): number | undefined | null {
  if (!header) return undefined;
  try {
    const exp = JSON.parse(Buffer.from(header.replace(/^Bearer /, '').split('.')[1], 'base64url').toString()).exp;
    return exp * 1000;
  } catch {
    return null;
  }
}

export class FakeHub {
  readonly log: Logged[] = [];
  /** Streams open now. */
  open = 0;
  /** Most streams open at once. */
  maxOpen = 0;
  /** Every subscribe request's Last-Event-ID header (null: none). */
  readonly cursors: (string | null)[] = [];
  /** Honour `ssehub_matched=1` (as ssehub does; another hub would not). */
  namesMatched = true;
  /** Require a token on subscriptions. */
  requireToken = false;
  /** Answer subscriptions with this status instead, when set. */
  refuseWith: number | undefined;
  /** Requests received, answered or not. */
  received = 0;
  /** Hold new requests unanswered (no status line) until {@link FakeHub.release}. */
  holding = false;
  /** The answers of the requests held now; one leaves when its client goes away. */
  readonly held = new Set<() => void>();
  private next = 1;
  private readonly streams = new Set<{ topics: Set<string>; res: ServerResponse; named: boolean }>();
  private readonly server: Server;
  url = '';

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/mercure`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.res.destroy();
    this.server.closeAllConnections();
    await new Promise((ok) => this.server.close(ok));
  }

  /** Appends an update and sends it to the matching streams. */
  publish(topic: string, data: string): string {
    const event = { id: `id-${this.next++}`, topic, data };
    this.log.push(event);
    for (const s of this.streams) if (s.topics.has(topic)) s.res.write(this.frame(event, s.named));
    return event.id;
  }

  /** Stops holding requests and answers those held. */
  release(): void {
    this.holding = false;
    for (const answer of [...this.held]) {
      this.held.delete(answer);
      answer();
    }
  }

  /** Forgets the history (every id becomes unknown) and ends every stream. */
  forget(): void {
    this.log.length = 0;
    this.dropAll();
  }

  /** Ends every stream, as a restarting hub would. */
  dropAll(): void {
    for (const s of this.streams) s.res.end();
  }

  private frame(e: Logged, named: boolean): string {
    return `id: ${e.id}\ndata: ${e.data}\n${named ? `matched: ${e.topic}\n` : ''}\n`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.received++;
    if (!this.holding) return this.answer(req, res);
    const answer = (): void => this.answer(req, res);
    this.held.add(answer);
    res.on('close', () => this.held.delete(answer));
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url!, 'http://x');
    if (req.method !== 'GET') return void res.writeHead(405).end();
    if (this.refuseWith) return void res.writeHead(this.refuseWith).end();
    const exp = tokenExp(req.headers.authorization);
    if (exp === null || (this.requireToken && exp === undefined) || (exp !== undefined && exp <= Date.now())) {
      return void res.writeHead(401).end();
    }
    const topics = new Set([...url.searchParams.getAll('match'), ...url.searchParams.getAll('topic')]);
    const cursor = req.headers['last-event-id'];
    const sent = typeof cursor === 'string' ? cursor : null;
    this.cursors.push(sent);
    let from = this.log.length;
    let anchor: string | undefined;
    if (sent === '') anchor = this.log.at(-1)?.id ?? 'earliest';
    else if (sent !== null) {
      const at = this.log.findIndex((e) => e.id === sent);
      from = at + 1;
      anchor = at < 0 ? 'earliest' : sent;
    }
    const headers: Record<string, string> = { 'content-type': 'text/event-stream' };
    if (anchor) headers['last-event-id'] = anchor;
    res.writeHead(200, headers);
    const named = this.namesMatched && url.searchParams.get('ssehub_matched') === '1';
    res.write(named ? ':ssehub_matched\n\n' : ':\n\n');
    for (const e of this.log.slice(from)) if (topics.has(e.topic)) res.write(this.frame(e, named));
    const stream = { topics, res, named };
    this.streams.add(stream);
    this.maxOpen = Math.max(this.maxOpen, ++this.open);
    const timer = exp === undefined ? undefined : setTimeout(() => res.end(), exp - Date.now());
    res.on('close', () => {
      clearTimeout(timer);
      this.streams.delete(stream);
      this.open--;
    });
  }
}

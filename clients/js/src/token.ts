/** Tokens: where they come from, and when they expire. */

/** A token, or a function returning a fresh one (called again before each expires). */
export type TokenSource = string | (() => string | Promise<string>);

/** The `exp` claim of a JWT in milliseconds since the epoch, or undefined. */
export function expiry(token: string): number | undefined {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long before `exp` a token is renewed: a fifth of what was left when it
 * was obtained, between 500 ms and 30 s, and never more than half of it.
 */
export function renewalMargin(lifetimeMs: number): number {
  return Math.min(30_000, Math.max(500, lifetimeMs / 5), lifetimeMs / 2);
}

/** Holds the current token of a source and renews it when it nears `exp`. */
export class Tokens {
  private token: string | undefined;
  private renewAt = Infinity;
  constructor(private readonly source: TokenSource | undefined) {}

  /** True when a function provides the tokens (so a refused one can be replaced). */
  get renewable(): boolean {
    return typeof this.source === 'function';
  }

  /**
   * The token to present now: the current one unless it is due for renewal
   * (or `fresh` asks for a new one) and a provider can give another.
   */
  async get(fresh = false): Promise<string | undefined> {
    const source = this.source;
    if (typeof source !== 'function') return source;
    if (fresh || this.token === undefined || Date.now() >= this.renewAt) {
      const token = await source();
      const exp = expiry(token);
      this.token = token;
      this.renewAt = exp === undefined ? Infinity : exp - renewalMargin(exp - Date.now());
    }
    return this.token;
  }

  /** Milliseconds until the current token is due for renewal (Infinity: never). */
  dueIn(): number {
    return this.renewable ? Math.max(0, this.renewAt - Date.now()) : Infinity;
  }
}

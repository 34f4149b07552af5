/** Reconnection delays: the server's `retry:` first, then jittered exponential backoff. */

/** Upper bound of any reconnection delay, in milliseconds. */
export const MAX_DELAY = 30_000;

/**
 * The delay before reconnection attempt `attempt` (0 for the first after a
 * working stream ended): `retry` itself, then `retry * 2^attempt` (at most
 * {@link MAX_DELAY}) scaled by a random factor in [0.5, 1).
 */
export function delay(attempt: number, retry: number, random: () => number = Math.random): number {
  if (attempt === 0) return retry;
  const ceiling = Math.min(MAX_DELAY, retry * 2 ** attempt);
  return Math.round(ceiling * (0.5 + random() / 2));
}

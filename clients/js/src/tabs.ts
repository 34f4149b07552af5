/**
 * Leader election among the pages (tabs, workers) of one origin sharing a
 * hub: Web Locks where the platform has them, else heartbeats over the
 * BroadcastChannel, else every page leads itself.
 */

/** An election in progress. */
export interface Election {
  /** A heartbeat another page posted (used by the heartbeat election only). */
  heard(tab: string): void;
  /** Leaves the election, giving the leadership up if held. */
  stop(): void;
}

/** Heartbeat period of the fallback election; a leader silent for 3 periods is replaced. */
export const HEARTBEAT = 1000;

interface Locks {
  request(name: string, options: { signal: AbortSignal }, callback: () => Promise<void>): Promise<void>;
}

/**
 * Joins the election `name`: `lead` is called once this page becomes the
 * leader, `resign` if the heartbeat election takes it back. `beat` posts a
 * heartbeat to the other pages; without it (no channel) the page leads alone.
 */
export function elect(
  name: string,
  tab: string,
  lead: () => void,
  resign: () => void,
  beat?: () => void,
): Election {
  const locks = (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks;
  if (locks && beat) {
    const abort = new AbortController();
    let release: (() => void) | undefined;
    locks
      .request(name, { signal: abort.signal }, () => {
        lead();
        return new Promise<void>((done) => (release = done));
      })
      .catch(() => {});
    return {
      heard() {},
      stop() {
        abort.abort();
        release?.();
      },
    };
  }
  if (!beat) {
    lead();
    return { heard() {}, stop() {} };
  }
  // Heartbeats: the leader beats every period; a page that hears none for
  // three periods claims the lead; of two leaders, the greater id resigns
  // (their short overlap only repeats events, which pages drop by id).
  let leading = false;
  let last = -Infinity;
  const tick = (): void => {
    if (!leading && Date.now() - last > 3 * HEARTBEAT) {
      leading = true;
      lead();
    }
    if (leading) beat();
  };
  const first = setTimeout(tick, HEARTBEAT / 4);
  const timer = setInterval(tick, HEARTBEAT);
  return {
    heard(other) {
      last = Date.now();
      if (leading && other < tab) {
        leading = false;
        resign();
      }
    },
    stop() {
      clearTimeout(first);
      clearInterval(timer);
      if (leading) resign();
      leading = false;
    },
  };
}

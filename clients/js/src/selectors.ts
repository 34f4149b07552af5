/**
 * What a subscription asks the hub for and how it is written in the
 * subscribe URL of each Mercure generation; the hub names the same text in
 * the `matched:` lines of the events (`ssehub_matched=1`).
 */

/**
 * A topic selector. A string is a 0.x selector (`topic=`: an exact topic,
 * `*`, or an RFC 6570 URI template) with `protocol: 0`, and an exact topic
 * (`match=`) with `protocol: 1`. `{ pattern }` is a WHATWG URL Pattern
 * (`match_urlpattern=`, Mercure 1.0).
 */
export type Selector = string | { pattern: string };

/** The Mercure generation strings are written in. */
export type Protocol = 0 | 1;

/** The text of `selector` as sent to the hub and named back in `matched:` lines. */
export const text = (selector: Selector): string => (typeof selector === 'string' ? selector : selector.pattern);

/** The query parameter and value of `selector` in the given generation. */
export function param(selector: Selector, protocol: Protocol): [string, string] {
  return [typeof selector !== 'string' ? 'match_urlpattern' : protocol === 0 ? 'topic' : 'match', text(selector)];
}

/** A stable text for a selector, to compare and deduplicate sets of them. */
export function key(selector: Selector): string {
  return typeof selector === 'string' ? 's' + selector : 'p' + selector.pattern;
}

/** The distinct selectors of `lists`, in a stable order. */
export function union(lists: Iterable<readonly Selector[]>): Selector[] {
  const all = new Map<string, Selector>();
  for (const list of lists) for (const s of list) all.set(key(s), s);
  return [...all.keys()].sort().map((k) => all.get(k)!);
}

/**
 * What a subscription asks the hub for, how it is written in the subscribe
 * URL of each Mercure generation, and the client-side test that routes an
 * event to the subscriptions whose selectors match one of its topics.
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

/** The query parameter and value of `selector` in the given generation. */
export function param(selector: Selector, protocol: Protocol): [string, string] {
  if (typeof selector !== 'string') return ['match_urlpattern', selector.pattern];
  return [protocol === 0 ? 'topic' : 'match', selector];
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

/** Characters of an expanded value: unreserved, `%` of escapes, and non-ASCII (IRIs), as the hub allows. */
const UNRESERVED = '-\\w.~%\\x80-\\uffff';
/** Characters `+` and `#` expressions also let through. */
const RESERVED = ":/?#[\\]@!$&'()*+,;=";

/**
 * A pattern for what one expression with operator `op` may expand to: any
 * values (lists and pairs too) of any of its variables, or nothing.
 */
function expansion(op: string): string {
  if (op === '+') return `[${UNRESERVED}${RESERVED}]*`;
  if (op === '#') return `(?:#[${UNRESERVED}${RESERVED}]*)?`;
  const sep = op === '?' ? '&' : op;
  return op ? `(?:\\${op}[${UNRESERVED},=\\${sep}]*)?` : `[${UNRESERVED},=]*`;
}

/**
 * A regular expression accepting what an RFC 6570 template can expand to
 * (each variable undefined, empty or any value), or null when the text is
 * not a valid template (then the hub treats it as an exact topic).
 */
export function templateRegExp(template: string): RegExp | null {
  let source = '';
  let rest = template;
  for (;;) {
    const open = rest.indexOf('{');
    const close = rest.indexOf('}', open);
    // A `}` outside an expression makes the whole an exact string, as for the hub.
    if (rest.slice(0, open < 0 ? undefined : open).includes('}')) return null;
    if (open < 0) break;
    if (close < 0) return null;
    const expression = rest.slice(open + 1, close);
    const op = /^[+#./;?&]/.test(expression) ? expression[0] : '';
    const names = expression.slice(op.length);
    if (!/^[\w%.]+(?::\d+|\*)?(?:,[\w%.]+(?::\d+|\*)?)*$/.test(names)) return null;
    source += escape(rest.slice(0, open)) + expansion(op);
    rest = rest.slice(close + 1);
  }
  return source ? new RegExp('^' + source + escape(rest) + '$') : null;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** URL Pattern, where the platform has it (Chromium; not Node 20 nor Firefox/Safari today). */
interface Pattern {
  test(input: string, base?: string): boolean;
}
type PatternClass = new (pattern: string, base?: string) => Pattern;

const compiled = new Map<string, (topic: string) => boolean>();

function compile(selector: Selector, protocol: Protocol, base: string): (topic: string) => boolean {
  if (typeof selector !== 'string') {
    const URLPattern = (globalThis as { URLPattern?: PatternClass }).URLPattern;
    // Without URLPattern the client cannot tell: the hub already filtered.
    if (!URLPattern) return () => true;
    try {
      const pattern = new URLPattern(selector.pattern, base);
      return (topic) => {
        try {
          return pattern.test(topic, base);
        } catch {
          return false;
        }
      };
    } catch {
      return () => false;
    }
  }
  const template = protocol === 0 ? templateRegExp(selector) : null;
  return template ? (topic) => template.test(topic) : (topic) => topic === selector;
}

/**
 * True when `selector` matches one of `topics`, by the rules of its
 * generation; `base` is the hub URL relative patterns are resolved against.
 */
export function matches(selector: Selector, topics: readonly string[], protocol: Protocol, base: string): boolean {
  if (selector === '*') return true;
  const id = protocol + key(selector) + ' ' + base;
  let test = compiled.get(id);
  if (!test) compiled.set(id, (test = compile(selector, protocol, base)));
  return topics.some(test);
}

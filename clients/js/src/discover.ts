/** Discovery: the hub a resource names in its `Link: <...>; rel="mercure"` header. */

/**
 * The hub URLs named by `rel="mercure"` links of a Link header value,
 * resolved against `base`, in order.
 */
export function mercureLinks(link: string | null, base: string): string[] {
  const hubs: string[] = [];
  for (const [, target, params] of (link ?? '').matchAll(/<([^>]*)>([^<]*)/g)) {
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
    if (rel && (rel[1] ?? rel[2]).toLowerCase().split(/\s+/).includes('mercure')) {
      hubs.push(new URL(target, base).href);
    }
  }
  return hubs;
}

/**
 * Fetches `url` (a resource of the application, or the hub's own
 * subscriptions API) and resolves with the first hub its Link header names;
 * rejects when it names none (the hub must expose `Link` through CORS).
 */
export async function discover(url: string, init?: RequestInit): Promise<string> {
  const response = await fetch(url, init);
  await response.body?.cancel().catch(() => {});
  const hub = mercureLinks(response.headers.get('link'), response.url || url)[0];
  if (!hub) throw new Error(`discover: ${url} names no hub (no Link rel="mercure")`);
  return hub;
}

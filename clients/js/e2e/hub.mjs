// Starts a real ssehub for the browser tests: plain HTTP/1.1 and HTTPS
// (HTTP/2; HTTP/3 off so Chromium stays on HTTP/2) on free loopback ports,
// metrics on a third, CORS for the test page's origin. Tokens are HS256
// with a random secret.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Free loopback ports (bound to 0, then released). */
export async function freePorts(count) {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise((ok) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => ok(s));
    })),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  return ports;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An HS256 JWT for `payload` (`typ`: `at+jwt` for a Mercure 1.0 access token). */
export function sign(payload, secret, typ = 'JWT') {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = `${part({ alg: 'HS256', typ })}.${part(payload)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/**
 * Starts `binary` allowing `pageOrigin`; resolves with its URLs, secret,
 * SPKI hash, a metrics reader and `stop()`.
 */
export async function startHub(binary, pageOrigin) {
  const [plain, tls, metrics] = await freePorts(3);
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-js-'));
  const secret = randomBytes(32).toString('hex');
  const child = spawn(binary, [
    'serve',
    '--listen', `127.0.0.1:${plain}`,
    '--tls-listen', `127.0.0.1:${tls}`,
    '--http3', 'false',
    '--metrics-listen', `127.0.0.1:${metrics}`,
    '--data-dir', join(dir, 'data'),
    '--publisher-jwt-key', secret,
    '--anonymous',
    '--subscriptions',
    '--heartbeat', '2s',
    '--cors-origins', pageOrigin,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((ok) => child.on('exit', ok));
  const stop = async () => {
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${plain}/readyz`)).ok) break;
    } catch {}
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`the hub did not start:\n${output}`);
    }
    await sleep(50);
  }
  const spki = /SPKI SHA-256 \(base64\) ([A-Za-z0-9+/=]+)/.exec(output)?.[1];
  if (!spki) {
    await stop();
    throw new Error(`no SPKI line in the hub's output:\n${output}`);
  }
  return {
    plain: `http://127.0.0.1:${plain}/.well-known/mercure`,
    tls: `https://localhost:${tls}/.well-known/mercure`,
    secret,
    spki,
    publisher: sign({ mercure: { publish: ['*'] } }, secret),
    output: () => output,
    /** Open subscription streams by protocol (h1, h2, h3), from the hub's metrics. */
    async subscriptions() {
      const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
      const counts = {};
      for (const [, protocol, n] of text.matchAll(/^ssehub_subscriptions\{protocol="([^"]+)"\} (\d+)/gm)) {
        counts[protocol] = Number(n);
      }
      return counts;
    },
    stop,
  };
}

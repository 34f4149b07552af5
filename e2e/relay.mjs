// A TCP relay for e2e/cluster.sh: hub3 reaches Redis through it, so the test
// can cut one node from Redis while the others keep it.
//
//   node relay.mjs LISTEN_PORT TARGET_PORT
//
// Relays 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT. SIGUSR1 cuts it
// (open connections are reset, new ones reset at once), SIGUSR2 restores it.

import { createServer, connect as tcpConnect } from 'node:net';

function relay(listenPort, targetPort) {
  let cut = false;
  const open = new Set();
  const server = createServer((client) => {
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = tcpConnect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    open.add(pair);
    const drop = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(listenPort, '127.0.0.1', () => console.log(`relay ready on ${listenPort}`));
  process.on('SIGUSR1', () => {
    cut = true;
    for (const { client, upstream } of open) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    open.clear();
    console.log('relay cut');
  });
  process.on('SIGUSR2', () => {
    cut = false;
    console.log('relay restored');
  });
  process.on('SIGTERM', () => process.exit(0));
}

relay(Number(process.argv[2]), Number(process.argv[3]));

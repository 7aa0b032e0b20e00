import { parentPort, workerData } from 'node:worker_threads';
import { Relay } from '../relay/relay.js';
import { Logger } from '../util/log.js';

/** The thread of an embedded relay (see embedded-relay.ts). */

const port = parentPort!;
const data = workerData as { listen: string; spoolDir: string; secret?: Uint8Array };
const log: Logger = {
  debug: (message) => port.postMessage({ type: 'log', level: 'debug', message }),
  info: (message) => port.postMessage({ type: 'log', level: 'info', message }),
  warn: (message) => port.postMessage({ type: 'log', level: 'warn', message }),
  error: (message) => port.postMessage({ type: 'log', level: 'error', message }),
};

async function main(): Promise<void> {
  const secret = data.secret ? Buffer.from(data.secret) : undefined;
  let relay: Relay;
  try {
    relay = await Relay.start({ listen: data.listen, spoolDir: data.spoolDir, log, secret });
  } catch {
    // the address is taken by something that is not a relay: any free port will do
    relay = await Relay.start({ listen: '127.0.0.1:0', spoolDir: data.spoolDir, log, secret });
  }
  port.on('message', (m: { type: string }) => {
    if (m.type !== 'close') return;
    void relay
      .close()
      .catch((err: Error) => log.error(`closing: ${err.message}`))
      .finally(() => port.postMessage({ type: 'closed' }));
  });
  port.postMessage({ type: 'ready', address: relay.address });
}

main().catch((err: Error) => port.postMessage({ type: 'failed', message: err.message }));

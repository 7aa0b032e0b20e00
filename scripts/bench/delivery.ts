import path from 'node:path';
import { RelayClient } from '../../src/client/client.js';
import { Payload, verifyFile } from './data.js';
import { startRelay } from './relay-process.js';
import { Resources } from './resources.js';
import { mbps, now } from './stats.js';

/**
 * Delivery over unthrottled loopback: time from the first call until push returns
 * (every byte fsync'd at the destination), through a first hop or straight to the
 * destination relay. The file is checked byte for byte afterwards.
 */

export type Route = 'first hop' | 'direct';

export interface DeliveryRun {
  mbps: number;
  ms: number;
  verified: boolean;
}

export async function delivery(cli: string, res: Resources, payload: Payload, route: Route): Promise<DeliveryRun> {
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const entry = route === 'direct' ? dest : await startRelay(cli, res, 'first hop');
  const client = await RelayClient.connect(entry.address);
  const file = `/bench/delivery-${route === 'direct' ? 'direct' : 'hop'}.bin`;
  try {
    const t0 = now();
    await client.truncate(dest.address, file, 0);
    let offset = 0;
    for (const chunk of payload.chunks) {
      await client.put(dest.address, file, offset, chunk);
      offset += chunk.length;
    }
    await client.push(dest.address, file);
    const ms = now() - t0;
    await verifyFile(path.join(dest.exportDir!, file), payload, `delivery (${route})`);
    return { mbps: mbps(payload.bytes, ms), ms, verified: true };
  } finally {
    client.destroy();
  }
}

import fsp from 'node:fs/promises';
import path from 'node:path';
import { RelayClient } from '../../src/client/client.js';
import { Payload, putPayload, verifyFile } from './data.js';
import { startRelay } from './relay-process.js';
import { Resources } from './resources.js';
import { mbps, now } from './stats.js';
import { freePort } from './ports.js';

/**
 * Delivery over unthrottled loopback, checked byte for byte afterwards:
 * - 'first hop' and 'direct': from the first call until push returns (every byte
 *   fsync'd at the destination), through a first hop or straight to the destination;
 * - 'spooled': the mover alone. Everything is put and committed at a first hop while
 *   the destination is down; then the destination starts, and the time runs from it
 *   being ready until push returns (the hop retries every 50 ms, so it finds it at once).
 */

export type Route = 'first hop' | 'direct' | 'spooled';

export interface DeliveryRun {
  mbps: number;
  ms: number;
  verified: boolean;
  /** 'spooled': the first of two rounds (see spooledDelivery). */
  firstRoundMbps?: number;
}

export async function delivery(cli: string, res: Resources, payload: Payload, route: Route): Promise<DeliveryRun> {
  if (route === 'spooled') return spooledDelivery(cli, res, payload);
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const entry = route === 'direct' ? dest : await startRelay(cli, res, 'first hop');
  const client = await RelayClient.connect(entry.address);
  const file = `/bench/delivery-${route === 'direct' ? 'direct' : 'hop'}.bin`;
  try {
    const t0 = now();
    await putPayload(client, dest.address, file, payload);
    await client.push(dest.address, file);
    const ms = now() - t0;
    await verifyFile(path.join(dest.exportDir!, file), payload, `delivery (${route})`);
    return { mbps: mbps(payload.bytes, ms), ms, verified: true };
  } finally {
    client.destroy();
  }
}

async function spooledDelivery(cli: string, res: Resources, payload: Payload): Promise<DeliveryRun> {
  const destAddress = `127.0.0.1:${await freePort()}`;
  const hop = await startRelay(cli, res, 'first hop', { maxSpoolBytes: 2 * payload.bytes + 64 * 2 ** 20, args: ['--retry', '*=initial=50ms,max=50ms'] });
  const client = await RelayClient.connect(hop.address);
  try {
    // Two rounds on the same first hop, as every baseline takes two passes: the first
    // finds memory the kernel has not handed out before (costly on this kind of VM),
    // the second is the figure.
    const first = await spooledRound(cli, res, client, destAddress, payload, '/bench/delivery-warm-up.bin');
    const second = await spooledRound(cli, res, client, destAddress, payload, '/bench/delivery-spooled.bin');
    return { ...second, firstRoundMbps: first.mbps };
  } finally {
    client.destroy();
  }
}

async function spooledRound(cli: string, res: Resources, client: RelayClient, destAddress: string, payload: Payload, file: string): Promise<DeliveryRun> {
  await putPayload(client, destAddress, file, payload);
  await client.commit();
  // timed from the destination being ready (it polls its ready file every 20 ms; the hop's next
  // attempt comes within 50 ms): node's start-up is not the mover's
  const dest = await startRelay(cli, res, 'destination', { export: true, listen: destAddress });
  const t0 = now();
  await client.push(destAddress, file);
  const ms = now() - t0;
  const local = path.join(dest.exportDir!, file);
  await verifyFile(local, payload, 'delivery (spooled)');
  // the next round finds the destination down again, and this file's memory free
  await fsp.rm(local);
  await stopProcess(dest.pid);
  return { mbps: mbps(payload.bytes, ms), ms, verified: true };
}

async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return; // gone
    }
    if (Date.now() > deadline) throw new Error(`destination relay ${pid} did not stop within 20 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RelayClient } from '../../src/client/client.js';
import { sizeOf } from './data.js';
import { startDelayProxy } from './delay-proxy.js';
import { RelayHandle, startRelay } from './relay-process.js';
import { Resources } from './resources.js';
import { now } from './stats.js';

/**
 * Many small independent operations through a first hop: for each of N files a
 * truncate to 0 and one put, then a single commit. With bulk frames (the client's
 * default) they travel many to a frame; without, each truncate is its own round
 * trip. Ops per second count both calls of every file, until commit returns.
 *
 * Fresh relays for every run. Each run does the whole round twice on its relays:
 * the first round (recorded too) finds the relay processes cold, just started,
 * with nothing compiled yet; the second is the figure of a relay that has been
 * running. After each round a push of its last file waits until all N files are
 * at the destination (ops leave the first hop in order), so delivery of one round
 * does not overlap the next; that delivery time is recorded as well.
 *
 * With a one-way delay, the client talks to the first hop through a delay proxy:
 * the case bulk frames are for (a client whose relay is a few milliseconds away).
 */

export interface BulkRound {
  opsPerSecond: number;
  filesPerSecond: number;
  ms: number;
  /** From commit returning until the push of the last file returned. */
  deliveryMs: number;
}

export interface BulkRun extends BulkRound {
  ops: number;
  firstRound: BulkRound;
  verified: boolean;
}

export async function bulkFrames(cli: string, res: Resources, files: number, fileBytes: number, batching: boolean, oneWayDelayMs = 0): Promise<BulkRun> {
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const hop = await startRelay(cli, res, 'first hop');
  // with a delay, the client reaches its relay over a link with that latency each way
  const proxy = oneWayDelayMs > 0 ? await startDelayProxy(hop.address, oneWayDelayMs) : undefined;
  const client = await RelayClient.connect(proxy?.address ?? hop.address, { batching });
  const data = crypto.randomBytes(fileBytes);
  const what = `bulk (${batching ? 'batching' : 'no batching'})`;
  try {
    const firstRound = await round(client, dest, '/warm-up', files, data, what);
    const r = await round(client, dest, '/bulk', files, data, what);
    return { ...r, ops: 2 * files, firstRound, verified: true };
  } finally {
    client.destroy();
    await proxy?.close();
  }
}

async function round(client: RelayClient, dest: RelayHandle, dir: string, files: number, data: Buffer, what: string): Promise<BulkRound> {
  const name = (i: number) => `${dir}/f${String(i).padStart(6, '0')}`;
  const t0 = now();
  for (let i = 0; i < files; i++) {
    await client.truncate(dest.address, name(i), 0);
    await client.put(dest.address, name(i), 0, data);
  }
  await client.commit();
  const t1 = now();
  await client.push(dest.address, name(files - 1));
  const t2 = now();
  const arrived = (await fsp.readdir(path.join(dest.exportDir!, dir))).length;
  const lastSize = await sizeOf(path.join(dest.exportDir!, name(files - 1)));
  if (arrived !== files || lastSize !== data.length) {
    throw new Error(`${what}: ${arrived} of ${files} files at the destination, the last one ${lastSize} bytes`);
  }
  const ms = t1 - t0;
  return { opsPerSecond: (2 * files) / (ms / 1000), filesPerSecond: files / (ms / 1000), ms, deliveryMs: t2 - t1 };
}

import path from 'node:path';
import { RelayClient } from '../../src/client/client.js';
import { parseBytes } from '../../src/util/units.js';
import { Payload, putPayload, sizeOf, verifyFile } from './data.js';
import { startRelay } from './relay-process.js';
import { Resources } from './resources.js';
import { MiB, mbps, now } from './stats.js';

/**
 * Put throughput when the way on is slow: a first hop with --bwlimit in front of a
 * destination. The writer should go at the speed of the first hop's disk, not of
 * the link: time from the first call until commit returns. At that moment the
 * destination must still lack part of the file (the relay really is spooling);
 * then push waits for the rest and the file is checked byte for byte.
 */

export interface PutThrottledRun {
  mbps: number;
  putMs: number;
  /** Bytes in the destination file when commit returned. */
  heldAtCommit: number;
  deliveryPendingAtCommit: boolean;
  /** From commit returning until push returned. */
  pushMs: number;
  /** Payload size over the time from the first put to push returning. */
  endToEndMbps: number;
  bwlimitMbps: number;
  verified: boolean;
}

export async function putThrottled(cli: string, res: Resources, payload: Payload, bwlimit: string): Promise<PutThrottledRun> {
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const hop = await startRelay(cli, res, 'first hop', { bwlimit, maxSpoolBytes: 2 * payload.bytes + 64 * MiB });
  const client = await RelayClient.connect(hop.address);
  const file = '/bench/put-throttled.bin';
  const local = path.join(dest.exportDir!, file);
  try {
    const t0 = now();
    await putPayload(client, dest.address, file, payload);
    await client.commit();
    const t1 = now();
    const heldAtCommit = await sizeOf(local);
    await client.push(dest.address, file);
    const t2 = now();
    await verifyFile(local, payload, 'put through a throttled first hop');
    return {
      mbps: mbps(payload.bytes, t1 - t0),
      putMs: t1 - t0,
      heldAtCommit,
      deliveryPendingAtCommit: heldAtCommit < payload.bytes,
      pushMs: t2 - t1,
      endToEndMbps: mbps(payload.bytes, t2 - t0),
      bwlimitMbps: parseBytes(bwlimit) / 1e6,
      verified: true,
    };
  } finally {
    client.destroy();
  }
}

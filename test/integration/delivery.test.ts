import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { journalDiskBytes } from '../../src/spool/journal.js';
import { sha256File, writeFile } from '../helpers/data.js';
import { startRelay, tempDir } from '../helpers/relay-process.js';

const MiB = 1024 * 1024;

async function connect(address: string): Promise<RelayClient> {
  const c = await RelayClient.connect(address);
  onTestFinished(() => c.destroy());
  return c;
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

describe('delivery through throttled links, outages and a full spool', () => {
  /** put + commit return while the throttled link is still busy: the writer is not slowed to link speed. */
  it('commit returns before delivery when the next hop is throttled', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '3MB' });
    const client = await connect(hop.address);
    const w = await writeFile(client, dest.address, '/slow/out.bin', 16 * MiB, 21);
    await client.commit();
    const target = path.join(dest.exportDir!, 'slow/out.bin');
    // 16 MiB at 3 MB/s takes ~5.5 s; the writer is done long before that
    expect(sizeOf(target)).toBeLessThan(16 * MiB);
    const status = (await client.status()) as { destinations: { host: string; pendingBytes: number }[] };
    expect(status.destinations.find((d) => d.host === dest.address)!.pendingBytes).toBeGreaterThan(0);
    // read-your-writes: the first hop answers with all the data, delivered or not
    const info = await client.stat(dest.address, '/slow/out.bin');
    expect(info.size).toBe(16 * MiB);
    await client.push(dest.address, '/slow/out.bin');
    expect(await sha256File(target)).toBe(w.sha256);
  });

  /** The destination is down for 10 s in the middle of a transfer; everything arrives, nothing twice. */
  it('survives the destination relay going down for 10 s mid-transfer', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '8MB' });
    const client = await connect(hop.address);
    const w = await writeFile(client, dest.address, '/outage/out.bin', 48 * MiB, 22);
    await client.commit();
    const target = path.join(dest.exportDir!, 'outage/out.bin');
    // wait until the transfer is under way, then take the destination away
    const t0 = Date.now();
    while (sizeOf(target) < 4 * MiB && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
    expect(sizeOf(target)).toBeGreaterThan(0);
    await dest.kill('SIGKILL');
    const atKill = sizeOf(target);
    expect(atKill).toBeLessThan(48 * MiB);
    await new Promise((r) => setTimeout(r, 10_000));
    const status = (await client.status()) as { movers: { retries: number; lastError: { code: string } | null }[] };
    expect(status.movers[0]!.retries).toBeGreaterThan(0);
    expect(status.movers[0]!.lastError?.code).toMatch(/UNREACHABLE|CONNECTION_LOST/);
    await dest.restart();
    await client.push(dest.address, '/outage/out.bin');
    expect(sizeOf(target)).toBe(48 * MiB);
    expect(await sha256File(target)).toBe(w.sha256);
    // the outage is on record: each failed attempt (transient, retried) and the recovery
    const log = (await client.failureLog()) as { kind: string; class: string; code: string; action: string }[];
    const failed = log.filter((r) => r.kind === 'delivery' && r.class === 'transient' && r.action.startsWith('retry'));
    expect(failed.length).toBeGreaterThanOrEqual(status.movers[0]!.retries);
    expect(failed.length).toBeGreaterThan(0);
    expect(log.some((r) => r.code === 'RECOVERED')).toBe(true);
  });

  /** A writer of 5x the spool limit blocks and then completes; the spool never exceeds the limit by more than a frame. */
  it('holds writers back at the spool limit instead of failing them', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '6MB', maxSpoolBytes: '4MiB' });
    const client = await connect(hop.address);
    const journalDir = path.join(hop.spoolDir, 'journal');
    let peak = 0;
    const poll = setInterval(() => {
      try {
        peak = Math.max(peak, journalDiskBytes(journalDir));
      } catch {
        /* a segment deleted while listing */
      }
    }, 10);
    onTestFinished(() => clearInterval(poll));
    const w = await writeFile(client, dest.address, '/limit/out.bin', 20 * MiB, 23, 256 * 1024);
    await client.commit();
    // the writer could only finish because most of its data had already left the spool
    const target = path.join(dest.exportDir!, 'limit/out.bin');
    expect(sizeOf(target)).toBeGreaterThanOrEqual(20 * MiB - 4 * MiB - 512 * 1024);
    await client.push(dest.address, '/limit/out.bin');
    clearInterval(poll);
    expect(await sha256File(target)).toBe(w.sha256);
    const frame = 256 * 1024 + 4096;
    const status = (await client.status()) as { spool: { peakBytes: number; maxBytes: number } };
    expect(status.spool.peakBytes).toBeLessThanOrEqual(4 * MiB + frame);
    expect(peak).toBeLessThanOrEqual(4 * MiB + frame);
    expect(peak).toBeGreaterThan(2 * MiB); // it really filled up
  });
});

import { describe, expect, it } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { KangarooError } from '../../src/errors.js';
import { patternChunk } from '../helpers/data.js';
import { makeRng } from '../helpers/fuzz.js';
import { connectRetry, Expected, expectDrained, expectExactly, figures, peakRss, pushRetry, seeded, sha256, sleep, statusOf } from '../helpers/fault-kit.js';
import { RelayProcess, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * Many writers at once through one first hop while the hop (twice) and the
 * destination (once) are SIGKILLed and restarted: 50 clients, 200 small files
 * each. A client whose connection broke reconnects and writes again only the
 * files it had not committed; committed files are never written twice. At the
 * end all 10,000 files are at the destination, identical, and the relays' peak
 * resident memory stayed bounded.
 */

const CLIENTS = 50;
const FILES = 200;
const GROUP = 10; // files per commit
const RSS_LIMIT = 400 * 1024 * 1024;

interface ClientStats {
  committedFiles: number;
  broken: number;
  rewrittenFiles: number;
}

function fileOf(seed: number, c: number, i: number): { path: string; data: Buffer } {
  const r = makeRng(seed ^ (c * 7919 + i * 104729));
  const size = 1024 + r.int(7 * 1024 + 1);
  return { path: `/load/c${String(c).padStart(2, '0')}/f${String(i).padStart(3, '0')}.bin`, data: patternChunk(seed, c * FILES + i, size) };
}

async function loadClient(hop: () => RelayProcess, host: string, seed: number, c: number, stats: ClientStats, committed: Set<string>): Promise<void> {
  let client: RelayClient | undefined;
  for (let start = 0; start < FILES; ) {
    const end = Math.min(FILES, start + GROUP);
    try {
      client ??= await connectRetry(hop().address, 90_000);
      for (let i = start; i < end; i++) {
        const f = fileOf(seed, c, i);
        if (committed.has(f.path)) throw new Error(`test bug: ${f.path} would be written twice`);
        await client.put(host, f.path, 0, f.data);
      }
      await client.commit();
      for (let i = start; i < end; i++) committed.add(fileOf(seed, c, i).path);
      stats.committedFiles += end - start;
      start = end;
    } catch (err) {
      const e = KangarooError.from(err);
      if (!e.transient) throw e;
      stats.broken++;
      stats.rewrittenFiles += end - start;
      client?.destroy();
      client = undefined;
      await sleep(20);
    }
  }
  client?.destroy();
}

describe('load with crashes', () => {
  it('50 clients x 200 small files survive SIGKILLs of the first hop and the destination, with bounded memory', async () => {
    const rng = seeded('load');
    const seed = rng.seed;
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    // a throttled link and a small spool hold the writers to link speed, so both hop kills land among them
    const hop = await startRelay(dir, 'hop', { bwlimit: '10MB', maxSpoolBytes: '8MiB', extra: ['--retry', '*=initial=100ms,max=1s'] });
    const host = dest.address;

    const stats: ClientStats = { committedFiles: 0, broken: 0, rewrittenFiles: 0 };
    const committed = new Set<string>();
    const started = Date.now();
    const clients = Promise.all(Array.from({ length: CLIENTS }, (_, c) => loadClient(() => hop, host, seed, c, stats, committed)));
    let clientError: unknown;
    clients.catch((err) => (clientError = err));

    // kill points at seeded fractions of the committed files: hop, destination, hop
    const total = CLIENTS * FILES;
    const plan: { at: number; who: 'hop' | 'dest' }[] = [
      { at: 0.2 + rng.next() * 0.15, who: 'hop' },
      { at: 0.45 + rng.next() * 0.1, who: 'dest' },
      { at: 0.65 + rng.next() * 0.15, who: 'hop' },
    ];
    const rss: Record<string, number> = {};
    const kills: { who: string; committedFiles: number; pendingOps: number; atMs: number }[] = [];
    for (const k of plan) {
      await waitFor(() => clientError !== undefined || stats.committedFiles >= k.at * total, 120_000, `${Math.round(k.at * 100)}% of the files committed`);
      if (clientError) throw clientError;
      const victim = k.who === 'hop' ? hop : dest;
      const pendingOps = (await statusOf(hop.address)).spool.pendingOps;
      rss[`${k.who}BeforeKill${kills.length + 1}`] = peakRss(victim.child.pid!);
      await victim.kill('SIGKILL');
      kills.push({ who: k.who, committedFiles: stats.committedFiles, pendingOps, atMs: Date.now() - started });
      await sleep(200 + rng.int(400));
      await victim.restart();
    }
    await clients;
    const writeMs = Date.now() - started;
    expect(stats.committedFiles).toBe(total);

    // everything the hop took arrives; push one file per client for the fsync at the destination
    await waitFor(async () => (await statusOf(hop.address)).spool.pendingOps === 0, 180_000, 'the hop to deliver everything');
    for (let c = 0; c < CLIENTS; c++) await pushRetry(hop.address, host, fileOf(seed, c, FILES - 1).path);
    const expected = new Map<string, Expected>();
    for (let c = 0; c < CLIENTS; c++) {
      for (let i = 0; i < FILES; i++) {
        const f = fileOf(seed, c, i);
        expected.set(f.path, { bytes: f.data.length, sha256: sha256(f.data) });
      }
    }
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(hop.address);
    rss.hopFinal = peakRss(hop.child.pid!);
    rss.destFinal = peakRss(dest.child.pid!);
    const mb = Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, Math.round(v / 1024 / 1024)]));
    figures('load', {
      seed,
      clients: CLIENTS,
      files: expected.size,
      bytesChecked: bytes,
      kills,
      brokenClientConnections: stats.broken,
      uncommittedFilesWrittenAgain: stats.rewrittenFiles,
      peakRssMB: mb,
      writeMs,
      totalMs: Date.now() - started,
    });
    for (const [k, v] of Object.entries(rss)) expect(v, `${k} peak RSS`).toBeLessThan(RSS_LIMIT);
  }, 300_000);
});

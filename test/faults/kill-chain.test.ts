import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { KangarooError } from '../../src/errors.js';
import { patternChunk } from '../helpers/data.js';
import { makeRng } from '../helpers/fuzz.js';
import { connectRetry, Expected, expectDrained, expectExactly, failuresOf, figures, pushRetry, seeded, sleep, statusOf } from '../helpers/fault-kit.js';
import { RelayProcess, startRelay, tempDir } from '../helpers/relay-process.js';

/**
 * SIGKILL anywhere in a two-hop chain A → B → DEST, at seeded random moments,
 * while a writer is putting and committing and while the chain is delivering.
 * Writers redo only what they had not committed when their connection broke
 * (positional puts of the same bytes); at the end every committed file is at
 * the destination byte-identical, nothing else is, and both spools are empty.
 *
 * KANGAROO_SEED replays a schedule; KANGAROO_KILLS raises the number of kill points.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 256 * KiB;
const GROUP = 4 * CHUNK; // a commit after every MiB
const FAST_RETRY = ['--retry', '*=initial=100ms,max=1s'];

interface FileSpec {
  path: string;
  bytes: number;
  seed: number;
}

function expectedOf(f: FileSpec): Expected {
  const hash = crypto.createHash('sha256');
  for (let off = 0, i = 0; off < f.bytes; off += CHUNK, i++) hash.update(patternChunk(f.seed, i, Math.min(CHUNK, f.bytes - off)));
  return { bytes: f.bytes, sha256: hash.digest('hex') };
}

interface WriterStats {
  committedBytes: number;
  commits: number;
  brokenConnections: number;
  redoneBytes: number;
}

/**
 * Writes files group by group through `relay()`, committing each group. A broken
 * connection (the relay was killed) costs the uncommitted group only: reconnect,
 * put it again, commit. A committed group is never written again.
 */
async function writer(relay: () => RelayProcess, host: string, nextFile: () => FileSpec | undefined, stats: WriterStats): Promise<void> {
  let client: RelayClient | undefined;
  for (let f = nextFile(); f; f = nextFile()) {
    let committed = 0;
    while (committed < f.bytes) {
      const end = Math.min(f.bytes, committed + GROUP);
      try {
        client ??= await connectRetry(relay().address, 90_000);
        if (committed === 0) await client.truncate(host, f.path, 0);
        for (let off = committed; off < end; off += CHUNK) {
          await client.put(host, f.path, off, patternChunk(f.seed, off / CHUNK, Math.min(CHUNK, f.bytes - off)));
        }
        await client.commit();
        stats.committedBytes += end - committed;
        stats.commits++;
        committed = end;
      } catch (err) {
        const e = KangarooError.from(err);
        if (!e.transient) throw e;
        stats.brokenConnections++;
        stats.redoneBytes += end - committed;
        client?.destroy();
        client = undefined;
        await sleep(50);
      }
    }
  }
  client?.destroy();
}

describe('SIGKILL anywhere in a two-hop chain', () => {
  it('delivers every committed byte exactly once through 20+ kills of A, B and DEST while writing and delivering', async () => {
    const rng = seeded('kill chain');
    const minKills = Number(process.env.KANGAROO_KILLS ?? 22);
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    // B is the bottleneck, so data waits in both spools while the kills come
    const b = await startRelay(dir, 'b', { bwlimit: '2MB', extra: FAST_RETRY });
    const a = await startRelay(dir, 'a', { routes: [`${dest.address}=${b.address}`], bwlimit: '3MB', maxSpoolBytes: '4MiB', extra: FAST_RETRY });
    const relays: Record<'a' | 'b' | 'dest', RelayProcess> = { a, b, dest };
    const host = dest.address;

    // Writers go on with new files (1-3 MiB) until the schedule has had half its kills; after
    // that, kills land while the chain delivers the backlog. Should the backlog run out before
    // enough of those, a short burst of new files (one per writer) makes a new one.
    const expected = new Map<string, Expected>();
    let stopWriting = false;
    const fileCount = [0, 0];
    // file sizes and contents from their own streams, so the kill schedule replays whatever the timing
    const fileRng = [makeRng(rng.seed ^ 0x51e5), makeRng(rng.seed ^ 0x7a11)];
    const nextFile = (w: number, limit?: number) => {
      let n = 0;
      return (): FileSpec | undefined => {
        if (limit !== undefined ? n >= limit : stopWriting && n >= 2) return undefined;
        n++;
        const r = fileRng[w]!;
        const f = { path: `/chain/w${w}/file${fileCount[w]!++}.bin`, bytes: MiB + r.int(2 * MiB), seed: r.int(1e9) };
        expected.set(f.path, expectedOf(f));
        return f;
      };
    };

    const wstats: WriterStats = { committedBytes: 0, commits: 0, brokenConnections: 0, redoneBytes: 0 };
    let writing = false;
    let writerError: unknown;
    let writing$: Promise<void> = Promise.resolve();
    let bursts = 0;
    const startWriters = (limit?: number) => {
      writing = true;
      writing$ = Promise.all([0, 1].map((w) => writer(() => a, host, nextFile(w, limit), wstats))).then(() => {
        writing = false;
      });
      writing$.catch((err) => (writerError = err));
    };
    const started = Date.now();
    startWriters();

    const kills: { atMs: number; targets: string[]; phase: string; pendingBytes: number; downMs: number }[] = [];
    const deliveringKills = () => kills.filter((k) => k.phase === 'delivering').length;
    for (;;) {
      if (writerError) throw writerError;
      const points = kills.reduce((n, k) => n + k.targets.length, 0);
      if (points >= minKills / 2) stopWriting = true;
      if (!writing && points >= minKills && deliveringKills() >= 4) break;
      if (Date.now() - started > 200_000) throw new Error(`kill schedule did not complete: ${JSON.stringify(kills)}`);
      await sleep(200 + rng.int(900));
      let pendingBytes = 0;
      for (const r of [a, b]) {
        const s = await statusOf(r.address);
        pendingBytes += s.destinations.reduce((n, d) => n + d.pendingBytes, 0);
      }
      if (!writing && pendingBytes === 0) {
        bursts++;
        startWriters(1);
      }
      // 'delivering': the writers are done and data waits in a spool
      const phase = writing ? 'writing' : 'delivering';
      const names = ['a', 'b', 'dest'] as const;
      const first = rng.pick(names);
      const targets = rng.chance(0.15) ? [first, rng.pick(names.filter((n) => n !== first))] : [first];
      await Promise.all(targets.map((t) => relays[t].kill('SIGKILL')));
      const downMs = rng.int(600);
      kills.push({ atMs: Date.now() - started, targets: [...targets], phase, pendingBytes, downMs });
      await sleep(downMs);
      await Promise.all(targets.map((t) => relays[t].restart()));
    }
    await writing$;
    const total = [...expected.values()].reduce((n, e) => n + e.bytes, 0);
    expect(wstats.committedBytes).toBe(total);
    const writeMs = Date.now() - started;

    // everything up: push each file through the chain (a push error only means "not known yet")
    let pushAttempts = 0;
    for (const p of expected.keys()) pushAttempts += await pushRetry(a.address, host, p, 180_000);
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(a.address);
    await expectDrained(b.address);

    const count = (t: string) => kills.filter((k) => k.targets.includes(t)).length;
    const logA = await failuresOf(a.address);
    const logB = await failuresOf(b.address);
    const killPoints = kills.reduce((n, k) => n + k.targets.length, 0);
    expect(killPoints).toBeGreaterThanOrEqual(20);
    expect(kills.filter((k) => k.phase === 'writing').length).toBeGreaterThanOrEqual(6);
    expect(deliveringKills()).toBeGreaterThanOrEqual(4);
    figures('kill-chain', {
      seed: rng.seed,
      killPoints,
      killEvents: kills.length,
      byTarget: { a: count('a'), b: count('b'), dest: count('dest') },
      doubleKills: kills.filter((k) => k.targets.length > 1).length,
      whileWriting: kills.filter((k) => k.phase === 'writing').length,
      whileDelivering: kills.filter((k) => k.phase === 'delivering').length,
      extraWriteBursts: bursts,
      files: expected.size,
      committedBytes: wstats.committedBytes,
      commits: wstats.commits,
      brokenWriterConnections: wstats.brokenConnections,
      redoneUncommittedBytes: wstats.redoneBytes,
      pushAttempts,
      bytesChecked: bytes,
      lost: 0,
      failureRecords: { a: logA.length, b: logB.length },
      recoveredRecords: { a: logA.filter((r) => r.code === 'RECOVERED').length, b: logB.filter((r) => r.code === 'RECOVERED').length },
      ms: Date.now() - started,
      writeMs,
    });
    console.log(`[faults] kill schedule: ${kills.map((k) => `${k.atMs}ms ${k.targets.join('+')} (${k.phase}, ${k.pendingBytes} pending, down ${k.downMs}ms)`).join('; ')}`);
  }, 300_000);
});

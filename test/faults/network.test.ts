import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { writeFile } from '../helpers/data.js';
import { makeRng } from '../helpers/fuzz.js';
import { connectRetry, Expected, expectDrained, expectExactly, failuresOf, figures, pushRetry, seeded, sleep, statusOf } from '../helpers/fault-kit.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * Network faults between a relay and its next hop, most of them through a
 * FaultProxy (test/helpers/fault-proxy.ts) the relay routes through: an outage
 * longer than several retry rounds, connections cut in the middle of a frame,
 * a link that stalls without closing (while sending, and during the hello),
 * bytes corrupted in transit (caught by the frame CRC, or, with the CRC
 * recomputed, only by the end-to-end sum of each put; on the last link and on
 * the first link of a chain), and a seeded mix of all of them on both links of
 * a chain. Every case ends with the destination holding exactly the committed
 * files. KANGAROO_SEED replays a case; KANGAROO_FAULTS sizes the mix.
 */

const MiB = 1024 * 1024;
const FAST_RETRY = ['--retry', '*=initial=200ms,max=1s'];

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Writes seeded files through `client` and commits; returns what the destination must hold. */
async function writeAll(client: RelayClient, host: string, files: { path: string; bytes: number; seed: number }[], chunk = 1024 * 1024): Promise<Map<string, Expected>> {
  const expected = new Map<string, Expected>();
  for (const f of files) expected.set(f.path, await writeFile(client, host, f.path, f.bytes, f.seed, chunk));
  await client.commit();
  return expected;
}

async function hopWithProxy(dir: string, extra: string[], bwlimit?: string) {
  const dest = await startRelay(dir, 'dest', { export: true });
  const proxy = await FaultProxy.start(dest.address);
  const hop = await startRelay(dir, 'hop', { routes: [`${dest.address}=${proxy.address}`], bwlimit, extra });
  return { dest, proxy, hop };
}

describe('network faults between a hop and its next hop', () => {
  it('rides out a destination that is down for many retry rounds, then logs the recovery', async () => {
    const rng = seeded('outage');
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '4MB', extra: FAST_RETRY });
    const client = await connectRetry(hop.address);
    const expected = await writeAll(client, dest.address, [{ path: '/outage/a.bin', bytes: 12 * MiB + rng.int(MiB), seed: rng.int(1e6) }]);
    const target = path.join(dest.exportDir!, 'outage/a.bin');
    await waitFor(() => sizeOf(target) > MiB, 30_000, 'delivery to be under way');
    const logBefore = (await failuresOf(hop.address)).length;
    await dest.kill('SIGKILL');
    const downAt = Date.now();
    const atKill = sizeOf(target);
    // with initial=200ms,max=1s six rounds take a few seconds; the default policy would take 12 s
    await waitFor(async () => (await statusOf(hop.address)).movers[0]!.retries >= 6, 30_000, 'six retry rounds against the dead destination');
    const during = await statusOf(hop.address);
    expect(during.movers[0]!.lastError?.code).toMatch(/UNREACHABLE|CONNECTION_LOST/);
    expect(during.destinations[0]!.pendingBytes).toBeGreaterThan(0);
    const downMs = Date.now() - downAt;
    await dest.restart();
    await pushRetry(hop.address, dest.address, '/outage/a.bin');
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(hop.address);

    const log = (await failuresOf(hop.address)).slice(logBefore);
    const retries = log.filter((r) => r.kind === 'delivery' && r.class === 'transient' && r.action.startsWith('retry'));
    expect(retries.length).toBeGreaterThanOrEqual(6);
    // backoff stays within the policy's cap
    for (const r of retries) expect(Number(/retry in (\d+) ms/.exec(r.action)?.[1])).toBeLessThanOrEqual(1000);
    const recovered = log.findIndex((r) => r.code === 'RECOVERED');
    expect(recovered).toBeGreaterThan(log.indexOf(retries[retries.length - 1]!));
    expect(log[recovered]!.outcome).toBe('delivered');
    figures('network/outage', { downMs, deliveredAtKill: atKill, retryRecords: retries.length, bytesChecked: bytes });
  });

  it('delivers exactly after the link is cut in the middle of frames again and again', async () => {
    const rng = seeded('mid-frame drops');
    const dir = await tempDir();
    // unthrottled: a commit group is 32 MiB, so every cut comes before the first commit and
    // the resend starts over, past bulks the destination applied already (dedup by seq)
    const { dest, proxy, hop } = await hopWithProxy(dir, FAST_RETRY);
    const client = await connectRetry(hop.address);
    const WANT = 12;
    // anywhere in the next 3 MB: inside a hello or a bulk frame
    const offsets: number[] = [1 + rng.int(3_000_000)];
    // nothing gets through while the data is written, so no connection can finish before the cuts begin
    proxy.drop({ persistent: true });
    const expected = await writeAll(client, dest.address, [
      { path: '/drops/one.bin', bytes: 8 * MiB + rng.int(MiB), seed: rng.int(1e6) },
      { path: '/drops/two.bin', bytes: 8 * MiB + rng.int(MiB), seed: rng.int(1e6) },
    ]);
    proxy.pass();
    proxy.drop({ afterBytes: offsets[0] }); // armed before the mover's next attempt
    const before = { cuts: proxy.stats.cuts, mid: proxy.stats.midFrameDrops };
    while (proxy.stats.cuts - before.cuts < WANT) {
      const cutsBefore = proxy.stats.cuts;
      if (!proxy.dropPending) {
        offsets.push(1 + rng.int(3_000_000));
        proxy.drop({ afterBytes: offsets[offsets.length - 1] });
      }
      let drained = false;
      await waitFor(async () => {
        if (proxy.stats.cuts > cutsBefore) return true;
        drained = (await statusOf(hop.address)).spool.pendingOps === 0;
        return drained;
      }, 60_000, 'the cut');
      if (drained) break;
    }
    proxy.pass();
    const cuts = proxy.stats.cuts - before.cuts;
    expect(cuts).toBeGreaterThanOrEqual(8); // the data outlasted most of the planned cuts
    expect(proxy.stats.midFrameDrops - before.mid).toBeGreaterThanOrEqual(cuts - 2);
    for (const p of expected.keys()) await pushRetry(hop.address, dest.address, p);
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(hop.address);
    const s = await statusOf(hop.address);
    expect(s.movers[0]!.retries).toBeGreaterThanOrEqual(cuts);
    figures('network/mid-frame-drops', { cuts, midFrameCuts: proxy.stats.midFrameDrops, connectionsDropped: proxy.stats.drops, cutAfterBytes: offsets, bytesChecked: bytes, resentBytes: s.movers[0]!.bytesSent - bytes });
  });

  /**
   * A cut connection is noticed at once: the mover must not go on reading its spool
   * and spending its rate budget on a connection that is gone.
   */
  it('notices a cut connection at once instead of sending on into it', async () => {
    const rng = seeded('cut notice');
    const dir = await tempDir();
    const { dest, proxy, hop } = await hopWithProxy(dir, FAST_RETRY, '4MB');
    const client = await connectRetry(hop.address);
    const expected = await writeAll(client, dest.address, [{ path: '/notice/a.bin', bytes: 12 * MiB, seed: rng.int(1e6) }]);
    await waitFor(() => proxy.stats.framesUp > 3, 30_000, 'the transfer to start');
    proxy.drop({ afterBytes: 256 * 1024 + rng.int(512 * 1024) });
    let noticedAt = 0;
    let sentAtNotice = 0;
    await waitFor(async () => {
      const m = (await statusOf(hop.address)).movers[0]!;
      if (m.retries === 0) return false;
      noticedAt = Date.now();
      sentAtNotice = m.bytesSent;
      return true;
    }, 30_000, 'the mover to notice the cut');
    const latencyMs = noticedAt - proxy.stats.lastCutAt;
    const forwardedAtCut = proxy.stats.bytesUp;
    await pushRetry(hop.address, dest.address, '/notice/a.bin');
    const bytes = await expectExactly(dest.exportDir!, expected);
    figures('network/cut-notice', { latencyMs, sentIntoDeadConnection: sentAtNotice - forwardedAtCut, bytesChecked: bytes });
    // one batch (rate/8 = 500 KB at 4 MB/s) may be on its way; 1 s at 4 MB/s is 4 MB sent into nothing
    expect(latencyMs, `the mover went on "sending" for ${latencyMs} ms (${sentAtNotice - forwardedAtCut} bytes) after its connection was cut`).toBeLessThan(1000);
  });

  it('detects a stalled link as a hung transfer, aborts, retries, and delivers once it passes again', async () => {
    const rng = seeded('stall');
    const dir = await tempDir();
    const { dest, proxy, hop } = await hopWithProxy(dir, [...FAST_RETRY, '--hang-floor-rate', '50MB', '--hang-allowance', '2s']);
    const client = await connectRetry(hop.address);
    const expected = await writeAll(client, dest.address, [{ path: '/stall/warm.txt', bytes: 4096, seed: rng.int(1e6) }]);
    await pushRetry(hop.address, dest.address, '/stall/warm.txt'); // the link is up and in use
    proxy.stall();
    const stalledAt = Date.now();
    const connectionsAtStall = proxy.stats.connections;
    for (const [p, e] of await writeAll(client, dest.address, [{ path: '/stall/big.bin', bytes: 8 * MiB + rng.int(MiB), seed: rng.int(1e6) }])) expected.set(p, e);
    await waitFor(async () => (await statusOf(hop.address)).movers[0]!.hangs > 0, 30_000, 'the hang detector to fire');
    const detectMs = Date.now() - stalledAt;
    const log = await failuresOf(hop.address);
    const hangs = log.filter((r) => r.kind === 'hang');
    expect(hangs.length).toBeGreaterThan(0);
    expect(hangs[0]!.code).toBe('TIMEOUT');
    expect(hangs[0]!.class).toBe('transient');
    expect(hangs[0]!.message).toMatch(/hung transfer/);
    // the hop gave up on the held connection itself (the proxy never closed it) and tried again
    await waitFor(() => proxy.stats.closedWhileStalled > 0 && proxy.stats.connections > connectionsAtStall, 30_000, 'a new connection after the abort');
    expect(sizeOf(path.join(dest.exportDir!, 'stall/big.bin'))).toBeLessThan(expected.get('/stall/big.bin')!.bytes);
    proxy.pass();
    await pushRetry(hop.address, dest.address, '/stall/big.bin');
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(hop.address);
    const s = await statusOf(hop.address);
    figures('network/stall', { hangs: s.movers[0]!.hangs, detectMs, heldConnections: proxy.stats.stalled, bytesChecked: bytes });
  });

  /**
   * The stall begins while the hop is (re)connecting and the held connection never
   * comes back (a path that lost its state): the hop must not wait for that hello
   * for ever. New connections pass again.
   */
  it('abandons a connection that went silent during set-up and delivers over a new one', async () => {
    const rng = seeded('stall in hello');
    const dir = await tempDir();
    const { dest, proxy, hop } = await hopWithProxy(dir, [...FAST_RETRY, '--hang-floor-rate', '50MB', '--hang-allowance', '2s']);
    const client = await connectRetry(hop.address);
    const expected = await writeAll(client, dest.address, [{ path: '/silent/warm.txt', bytes: 4096, seed: rng.int(1e6) }]);
    await pushRetry(hop.address, dest.address, '/silent/warm.txt');
    proxy.stall();
    for (const [p, e] of await writeAll(client, dest.address, [{ path: '/silent/big.bin', bytes: 4 * MiB, seed: rng.int(1e6) }])) expected.set(p, e);
    await waitFor(async () => (await statusOf(hop.address)).movers[0]!.hangs > 0, 30_000, 'the hang detector to fire');
    // the mover's next connection is held in the middle of its hello
    const held = proxy.stats.connections;
    await waitFor(() => proxy.stats.connections > held, 30_000, 'the mover to reconnect');
    await waitFor(async () => (await statusOf(hop.address)).movers[0]!.state === 'connecting', 10_000, 'the mover to wait for its hello');
    proxy.pass({ resumeHeld: false });
    const passedAt = Date.now();
    // a hello that never comes back must time out like any other request (10 s connect timeout, 2 s hang allowance)
    let state = '';
    try {
      await waitFor(async () => {
        const s = await statusOf(hop.address);
        state = s.movers[0]!.state;
        return s.spool.pendingOps === 0;
      }, 30_000, 'delivery over a new connection');
    } catch {
      expect.fail(`after the link passed again the mover stayed "${state}" for ${Math.round((Date.now() - passedAt) / 1000)} s: it waits for ever on a hello sent into a connection that went silent`);
    }
    const bytes = await expectExactly(dest.exportDir!, expected);
    figures('network/stall-in-hello', { recoverMs: Date.now() - passedAt, bytesChecked: bytes });
  });

  it('never lets corrupted bytes land: the frame CRC catches a plain flip, the end-to-end sum a flip with the CRC recomputed', async () => {
    const rng = seeded('corruption');
    const dir = await tempDir();
    const { dest, proxy, hop } = await hopWithProxy(dir, FAST_RETRY);
    const client = await connectRetry(hop.address);
    const EACH = 3;

    // (1) a plain flip: the destination's frame decoder refuses the frame and drops the connection
    proxy.corrupt({ recomputeCrc: false, count: EACH });
    const expected = await writeAll(client, dest.address, [{ path: '/corrupt/plain.bin', bytes: 6 * MiB + rng.int(MiB), seed: rng.int(1e6) }]);
    const watch = watchBytes(dest.exportDir!, proxy);
    await pushRetry(hop.address, dest.address, '/corrupt/plain.bin');
    expect(proxy.stats.corruptions.length).toBe(EACH);
    expect(dest.log().match(/frame checksum mismatch/g)?.length ?? 0).toBeGreaterThanOrEqual(EACH);

    // (2) CRC recomputed: only the put's own sum can tell; the destination refuses with INTEGRITY
    proxy.corrupt({ recomputeCrc: true, count: EACH });
    for (const [p, e] of await writeAll(client, dest.address, [{ path: '/corrupt/sum.bin', bytes: 6 * MiB + rng.int(MiB), seed: rng.int(1e6) }])) expected.set(p, e);
    await pushRetry(hop.address, dest.address, '/corrupt/sum.bin');
    watch.stop();
    expect(proxy.stats.corruptions.length).toBe(2 * EACH);
    expect(proxy.stats.corruptions.filter((c) => c.recomputedCrc).length).toBe(EACH);
    expect(watch.wrong).toEqual([]);

    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(hop.address);
    const log = await failuresOf(hop.address);
    const integrity = log.filter((r) => r.kind === 'integrity');
    expect(integrity.length).toBeGreaterThanOrEqual(EACH);
    expect(integrity[0]!.code).toBe('INTEGRITY');
    expect(integrity[0]!.action).toMatch(/resend from the spool/);
    expect(log.filter((r) => r.kind === 'delivery' && r.class === 'transient').length).toBeGreaterThanOrEqual(EACH);
    figures('network/corruption', {
      flipsCaughtByFrameCrc: EACH,
      flipsCaughtByEndToEndSum: EACH,
      integrityRecords: integrity.length,
      byteObservations: watch.observations,
      bytesChecked: bytes,
    });
  });

  /**
   * The same flip with the CRC recomputed, but on the first link of a chain A → B → DEST:
   * B must not take (and acknowledge) a put whose data does not match its sum, or A
   * drops its good copy and only a corrupted one is left.
   */
  it('a put corrupted on the first link of a chain is resent from the first hop, not lost', async () => {
    const rng = seeded('corruption on the first link');
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const b = await startRelay(dir, 'b', { extra: FAST_RETRY });
    const proxy = await FaultProxy.start(b.address);
    const a = await startRelay(dir, 'a', { routes: [`${dest.address}=${proxy.address}`], extra: FAST_RETRY });
    const client = await connectRetry(a.address);
    proxy.corrupt({ recomputeCrc: true, count: 2 });
    const expected = await writeAll(client, dest.address, [{ path: '/first/link.bin', bytes: 4 * MiB + rng.int(MiB), seed: rng.int(1e6) }]);
    const watch = watchBytes(dest.exportDir!, proxy);
    let error = '';
    await pushRetry(a.address, dest.address, '/first/link.bin', 60_000).catch((err: Error) => (error = err.message));
    watch.stop();
    expect(proxy.stats.corruptions.length).toBeGreaterThan(0);
    expect(watch.wrong).toEqual([]);
    expect(error, 'the middle relay spooled the corrupted put, acknowledged it, and can only stop the file').toBe('');
    const bytes = await expectExactly(dest.exportDir!, expected);
    figures('network/corruption-first-link', { flips: proxy.stats.corruptions.length, bytesChecked: bytes });
  });

  /**
   * A seeded mix of link faults on both links of A → B → DEST while writers keep
   * writing through A: cuts (at once and mid-frame), plain flips, flips with the CRC
   * recomputed (on the last link, where the destination checks), and stalls of up
   * to 3 s (past the hang limit, so some are aborted as hung).
   */
  it('delivers exactly through a seeded mix of cuts, flips and stalls on both links of a chain', async () => {
    const rng = seeded('link fault fuzz');
    const FAULTS = Number(process.env.KANGAROO_FAULTS ?? 30);
    const dir = await tempDir();
    const HANG = ['--hang-floor-rate', '50MB', '--hang-allowance', '2s'];
    const dest = await startRelay(dir, 'dest', { export: true });
    const last = await FaultProxy.start(dest.address, { random: rng.next });
    const b = await startRelay(dir, 'b', { routes: [`${dest.address}=${last.address}`], bwlimit: '3MB', extra: [...FAST_RETRY, ...HANG] });
    const first = await FaultProxy.start(b.address, { random: rng.next });
    const a = await startRelay(dir, 'a', { routes: [`${dest.address}=${first.address}`], bwlimit: '3MB', maxSpoolBytes: '4MiB', extra: [...FAST_RETRY, ...HANG] });
    const host = dest.address;

    // two writers go on writing 1-2 MiB files, a commit per file
    const expected = new Map<string, Expected>();
    let stop = false;
    const writeLoop = async (w: number) => {
      const files = makeRng(rng.seed ^ (0x9e37 + w));
      const client = await connectRetry(a.address);
      // until the faults are done (at least two files, at most ~32 MiB in all)
      for (let i = 0; i < 2 || (!stop && [...expected.values()].reduce((n, e) => n + e.bytes, 0) < 32 * MiB); i++) {
        const f = { path: `/mix/w${w}/f${i}.bin`, bytes: MiB + files.int(MiB), seed: files.int(1e9) };
        expected.set(f.path, await writeFile(client, host, f.path, f.bytes, f.seed, 256 * 1024));
        await client.commit();
      }
    };
    const writers = Promise.all([0, 1].map(writeLoop));
    let writerError: unknown;
    writers.catch((err) => (writerError = err));

    const injected: Record<string, number> = {};
    const links = { first, last };
    for (let n = 0; n < FAULTS; n++) {
      if (writerError) throw writerError;
      await sleep(150 + rng.int(450));
      const where = rng.pick(['first', 'last'] as const);
      const proxy = links[where];
      const kinds = ['cut', 'cut-mid-frame', 'flip', 'stall', ...(where === 'last' ? ['flip-crc-recomputed'] : [])];
      const kind = rng.pick(kinds);
      injected[`${where}:${kind}`] = (injected[`${where}:${kind}`] ?? 0) + 1;
      if (kind === 'cut') proxy.drop();
      else if (kind === 'cut-mid-frame') proxy.drop({ afterBytes: 1 + rng.int(2_000_000) });
      else if (kind === 'flip') proxy.corrupt({ recomputeCrc: false });
      else if (kind === 'flip-crc-recomputed') proxy.corrupt({ recomputeCrc: true });
      else {
        proxy.stall();
        await sleep(300 + rng.int(2700));
        proxy.pass();
      }
    }
    stop = true;
    const applied = { cuts: first.stats.cuts + last.stats.cuts, flips: first.stats.corruptions.length + last.stats.corruptions.length };
    first.pass();
    last.pass();
    await writers;
    for (const p of expected.keys()) await pushRetry(a.address, host, p, 180_000);
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(a.address);
    await expectDrained(b.address);
    const hangs = (await statusOf(a.address)).movers[0]!.hangs + (await statusOf(b.address)).movers[0]!.hangs;
    figures('network/fault-fuzz', { seed: rng.seed, faultsDrawn: FAULTS, byKind: injected, cutsApplied: applied.cuts, flipsApplied: applied.flips, hangsDetected: hangs, files: expected.size, bytesChecked: bytes });
  }, 240_000);
});

/**
 * Polls the destination at every corrupted offset while delivery runs: the
 * flipped value must never be there (before the resend the byte is unwritten).
 */
function watchBytes(root: string, proxy: FaultProxy) {
  const wrong: string[] = [];
  let observations = 0;
  const buf = Buffer.alloc(1);
  const timer = setInterval(() => {
    for (const c of proxy.stats.corruptions) {
      if (c.flipped === 0) continue; // indistinguishable from a hole not written yet
      let fd: number | undefined;
      try {
        fd = fs.openSync(path.join(root, c.path), 'r');
        if (fs.readSync(fd, buf, 0, 1, c.fileOffset) === 1) {
          observations++;
          if (buf[0] === c.flipped) wrong.push(`${c.path}@${c.fileOffset}`);
        }
      } catch {
        /* not there yet */
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
  }, 10);
  onTestFinished(() => clearInterval(timer));
  return {
    wrong,
    get observations() {
      return observations;
    },
    stop: () => clearInterval(timer),
  };
}

import { crc32 } from '../../src/util/crc32.js';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KangarooError } from '../../src/errors.js';
import { OrderedOp } from '../../src/protocol/messages.js';
import { RECORD_HEADER_BYTES } from '../../src/spool/journal.js';
import { Origin } from '../../src/spool/records.js';
import { MAX_UNWRITTEN_BYTES, Spool, SpooledOp } from '../../src/spool/spool.js';

const HOST = '127.0.0.1:9';
const NO_ORIGIN: Origin = { clientId: '', seq: 0 };
const MiB = 1024 * 1024;
const KiB = 1024;

const dirs: string[] = [];
const open: Spool[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kangaroo-spool-'));
  dirs.push(d);
  return d;
}

async function openSpool(dir: string, extra: { maxBytes?: number; memoryBytes?: number } = {}): Promise<Spool> {
  const spool = await Spool.open({ dir, maxBytes: 2 * MiB, ...extra });
  open.push(spool);
  return spool;
}

afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function bytes(seed: number, size: number): Buffer {
  if (size === 0) return Buffer.alloc(0);
  const key = crypto.createHash('sha256').update(`spool:${seed}`).digest();
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

const put = (p: string, offset: number, data: Buffer): OrderedOp => ({ type: 'put', seq: 0, host: HOST, path: p, offset, data });
const truncate = (p: string, size: number): OrderedOp => ({ type: 'truncate', seq: 0, host: HOST, path: p, size });
const mkdir = (p: string): OrderedOp => ({ type: 'mkdir', seq: 0, host: HOST, path: p, mode: 0o755 });
const rename = (p: string, to: string): OrderedOp => ({ type: 'rename', seq: 0, host: HOST, path: p, to });
const unlink = (p: string): OrderedOp => ({ type: 'unlink', seq: 0, host: HOST, path: p });

function mixedOps(): OrderedOp[] {
  return [
    mkdir('/d'),
    truncate('/d/f', 0),
    put('/d/f', 0, bytes(1, 1000)),
    put('/d/f', 1000, bytes(2, 70_000)),
    put('/d/g', 5, bytes(3, 10)),
    put('/d/empty', 0, Buffer.alloc(0)),
    rename('/d/g', '/d/h'),
    truncate('/d/f', 500),
    unlink('/d/h'),
    put('/e', 0, bytes(4, 200_000)),
  ];
}

function acceptAll(spool: Spool, ops: OrderedOp[]): SpooledOp[] {
  return ops.map((op) => {
    const sop = spool.accept(op, NO_ORIGIN);
    expect(sop).toBeDefined();
    return sop!;
  });
}

type Comparable = Omit<OrderedOp, 'data'> & { data?: string };

/** An op with its data as length + hash: deep-equal on large Buffers is slow and its diffs unreadable. */
function norm(op: OrderedOp): Comparable {
  if (op.type !== 'put') return op;
  // a put comes back with the checksum taken where it entered (the one it was sent with, or its data's)
  return { ...op, sum: op.sum ?? crc32(op.data), data: `${op.data.length}:${crypto.createHash('sha256').update(op.data).digest('hex').slice(0, 16)}` };
}

/** The pending queue as comparable values: the op with its data loaded from the spool. */
async function pending(spool: Spool): Promise<{ localSeq: number; op: Comparable }[]> {
  const out: { localSeq: number; op: Comparable }[] = [];
  for (const sop of spool.queue(HOST).values()) out.push({ localSeq: sop.localSeq, op: norm(await spool.materialize(sop)) });
  return out;
}

/** markDelivered frees segments asynchronously and says so with 'space'. */
async function deliver(spool: Spool, sops: SpooledOp[]): Promise<void> {
  const space = once(spool, 'space');
  spool.markDelivered(sops);
  await space;
}

function segmentFiles(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'journal')).filter((n) => n.endsWith('.log')).sort();
}

describe('Spool', () => {
  // Committed ops survive close/reopen in order, with the same bytes (read back from disk).
  it('recovers pending ops in order with their data', async () => {
    const dir = tmpDir();
    const ops = mixedOps();
    const spool = await openSpool(dir);
    const sops = acceptAll(spool, ops);
    expect(sops.map((s) => s.localSeq)).toEqual(ops.map((_, i) => i + 1));
    // accept is synchronous: the data is readable at once
    expect((await spool.data(sops[3]!)).equals((ops[3] as { data: Buffer }).data)).toBe(true);
    await spool.commit();
    await spool.close();

    const again = await openSpool(dir);
    expect(again.recovery!.corrupted).toEqual([]);
    expect(again.recovery!.tornTailBytes).toBe(0);
    expect(again.opCount).toBe(ops.length);
    expect(again.memoryBytes).toBe(0);
    const got = await pending(again);
    expect(got.map((g) => g.localSeq)).toEqual(ops.map((_, i) => i + 1));
    expect(got.map((g) => g.op)).toEqual(ops.map(norm));
    // new ops continue the sequence
    expect(again.accept(put('/x', 0, Buffer.from('x')), NO_ORIGIN)!.localSeq).toBe(ops.length + 1);
  });

  // With no memory budget, data is read back from the journal even before reopen.
  it('reads put data from the journal when memory is exhausted', async () => {
    const dir = tmpDir();
    const spool = await openSpool(dir, { memoryBytes: 0 });
    const data = bytes(9, 300_000);
    const sop = spool.accept(put('/big', 7, data), NO_ORIGIN)!;
    expect(sop.data).toBeUndefined();
    expect(spool.memoryBytes).toBe(0);
    expect((await spool.data(sop)).equals(data)).toBe(true);
    expect(norm(await spool.materialize(sop))).toEqual(norm(put('/big', 7, data)));
  });

  // Delivered ops never come back; undelivered ones come back unchanged.
  it('forgets delivered ops across reopen', async () => {
    const dir = tmpDir();
    const ops = mixedOps();
    const spool = await openSpool(dir);
    const sops = acceptAll(spool, ops);
    const delivered = [sops[0]!, sops[2]!, sops[3]!, sops[9]!];
    await deliver(spool, delivered);
    expect(spool.opCount).toBe(ops.length - delivered.length);
    await spool.commit();
    await spool.close();

    const again = await openSpool(dir);
    const keep = ops.filter((_, i) => ![0, 2, 3, 9].includes(i));
    const got = await pending(again);
    expect(got.map((g) => g.op)).toEqual(keep.map(norm));
    expect(got.map((g) => g.localSeq)).toEqual([2, 5, 6, 7, 8, 9]);

    // and once more after delivering the rest: nothing at all
    await deliver(again, [...again.queue(HOST).values()]);
    await again.close();
    const third = await openSpool(dir);
    expect(third.opCount).toBe(0);
    expect(third.hosts()).toEqual([]);
  });

  // Space comes back: a segment whose ops are all delivered is deleted and bytesUsed drops.
  it('deletes fully delivered segments and gives the space back', async () => {
    const dir = tmpDir();
    const spool = await openSpool(dir, { maxBytes: 2 * MiB });
    const sops: SpooledOp[] = [];
    for (let i = 0; i < 12; i++) sops.push(spool.accept(put(`/f${i % 3}`, i * 100 * KiB, bytes(i, 100 * KiB)), NO_ORIGIN)!);
    await spool.commit();
    const segsBefore = segmentFiles(dir);
    expect(segsBefore.length).toBeGreaterThanOrEqual(4);
    const usedBefore = spool.bytesUsed;
    expect(usedBefore).toBeGreaterThan(12 * 100 * KiB);

    // deliver the oldest half: the segments holding only those go away
    const firstHalf = sops.slice(0, 6);
    const freedSegments = new Set(firstHalf.map((s) => s.loc.segment));
    for (const s of sops.slice(6)) freedSegments.delete(s.loc.segment);
    expect(freedSegments.size).toBeGreaterThanOrEqual(1);
    await deliver(spool, firstHalf);
    const segsMid = segmentFiles(dir);
    for (const seg of freedSegments) expect(segsMid).not.toContain(`seg-${String(seg).padStart(8, '0')}.log`);
    expect(spool.bytesUsed).toBeLessThan(usedBefore);

    // deliver everything: only the fresh current segment (a checkpoint) is left
    await deliver(spool, sops.slice(6));
    expect(segmentFiles(dir)).toHaveLength(1);
    expect(spool.bytesUsed).toBeLessThan(4 * KiB);
    expect(spool.opCount).toBe(0);
  });

  // Backpressure: hasRoom() turns false at maxBytes and true again once space is freed.
  it('reports no room at maxBytes', async () => {
    const dir = tmpDir();
    const spool = await openSpool(dir, { maxBytes: 2 * MiB });
    expect(spool.hasRoom()).toBe(true);
    const sops: SpooledOp[] = [];
    let i = 0;
    while (spool.hasRoom()) sops.push(spool.accept(put('/fill', i * 64 * KiB, bytes(i++, 64 * KiB)), NO_ORIGIN)!);
    expect(spool.bytesUsed).toBeGreaterThanOrEqual(2 * MiB);
    expect(spool.bytesUsed).toBeLessThan(2 * MiB + 64 * KiB + 1024);
    expect(spool.peakBytes).toBe(spool.bytesUsed);
    await spool.commit();
    await deliver(spool, sops);
    expect(spool.hasRoom()).toBe(true);
    expect(spool.peakBytes).toBeGreaterThanOrEqual(2 * MiB);
  });

  // Writers faster than the disk: accepted bytes waiting for the journal's writer are bounded,
  // and room comes back (with a 'space' event) as the writer catches up.
  it('reports no room while more than MAX_UNWRITTEN_BYTES wait for the disk, and room again once written', async () => {
    const spool = await openSpool(tmpDir(), { maxBytes: 1024 * MiB });
    const chunk = bytes(1, MiB);
    let i = 0;
    // all in one turn of the event loop: nothing is written yet
    while (spool.hasRoom()) spool.accept(put('/fast', i * MiB, chunk), NO_ORIGIN), i++;
    expect(spool.unwrittenBytes).toBeGreaterThanOrEqual(MAX_UNWRITTEN_BYTES);
    expect(i).toBeLessThanOrEqual(MAX_UNWRITTEN_BYTES / MiB + 1);
    await once(spool, 'space');
    expect(spool.hasRoom()).toBe(true);
  });

  describe('resend filter', () => {
    // A resent op (seq at or below the client's watermark) is dropped; a newer one is taken.
    it('drops resends by client seq', async () => {
      const spool = await openSpool(tmpDir());
      expect(spool.accept(put('/a', 0, Buffer.from('5')), { clientId: 'a', seq: 5 })).toBeDefined();
      expect(spool.accept(put('/a', 0, Buffer.from('5 again')), { clientId: 'a', seq: 5 })).toBeUndefined();
      expect(spool.accept(put('/a', 0, Buffer.from('3')), { clientId: 'a', seq: 3 })).toBeUndefined();
      expect(spool.accept(put('/a', 0, Buffer.from('6')), { clientId: 'a', seq: 6 })).toBeDefined();
      // other clients and seq 0 are independent of client a
      expect(spool.accept(put('/a', 0, Buffer.from('b1')), { clientId: 'b', seq: 1 })).toBeDefined();
      expect(spool.accept(put('/a', 0, Buffer.from('no dedup')), { clientId: 'a', seq: 0 })).toBeDefined();
      expect(spool.watermark('a')).toBe(6);
      expect(spool.watermark('b')).toBe(1);
      expect(spool.opCount).toBe(4);
    });

    // The watermark is rebuilt from the op records on reopen.
    it('keeps the watermark across reopen', async () => {
      const dir = tmpDir();
      const spool = await openSpool(dir);
      spool.accept(put('/a', 0, Buffer.from('x')), { clientId: 'a', seq: 5 });
      await spool.commit();
      await spool.close();
      const again = await openSpool(dir);
      expect(again.watermark('a')).toBe(5);
      expect(again.accept(put('/a', 0, Buffer.from('x')), { clientId: 'a', seq: 5 })).toBeUndefined();
      expect(again.accept(put('/a', 0, Buffer.from('y')), { clientId: 'a', seq: 6 })).toBeDefined();
    });

    // After the op records are delivered and their segment deleted, the checkpoint carries the watermark.
    it('keeps the watermark after the segment with the ops was delivered and deleted (rotation in session)', async () => {
      const dir = tmpDir();
      const spool = await openSpool(dir, { maxBytes: 2 * MiB });
      const first = spool.accept(put('/a', 0, bytes(1, 300 * KiB)), { clientId: 'a', seq: 5 })!;
      // the next accept rotates: the new segment opens with a checkpoint that knows a=5
      const second = spool.accept(put('/b', 0, Buffer.from('b')), NO_ORIGIN)!;
      expect(second.loc.segment).toBe(first.loc.segment + 1);
      await spool.commit();
      await deliver(spool, [first, second]);
      expect(segmentFiles(dir)).not.toContain(`seg-${String(first.loc.segment).padStart(8, '0')}.log`);
      await spool.close();

      const again = await openSpool(dir);
      expect(again.watermark('a')).toBe(5);
      expect(again.accept(put('/a', 0, Buffer.from('resend')), { clientId: 'a', seq: 5 })).toBeUndefined();
    });

    // Reopening twice after full delivery: the first reopen deletes the old segments, so the second
    // depends on the checkpoint written at the first reopen. It must carry the watermark and nextSeq.
    it('keeps the watermark and localSeq order across two reopens after full delivery', async () => {
      const dir = tmpDir();
      const spool = await openSpool(dir);
      const sop = spool.accept(put('/a', 0, Buffer.from('x')), { clientId: 'a', seq: 5 })!;
      expect(sop.localSeq).toBe(1);
      await spool.commit();
      await deliver(spool, [sop]);
      await spool.close();

      const second = await openSpool(dir);
      expect(second.watermark('a')).toBe(5);
      await second.close();

      const third = await openSpool(dir);
      expect(third.watermark('a')).toBe(5);
      expect(third.accept(put('/a', 0, Buffer.from('resend')), { clientId: 'a', seq: 5 })).toBeUndefined();
      // local sequence numbers never go backwards (the next hop filters resends by them)
      expect(third.accept(put('/n', 0, Buffer.from('n')), NO_ORIGIN)!.localSeq).toBeGreaterThan(1);
    });
  });

  // A DONE record may sit in a segment with no live ops while the op it retires lives in an older,
  // still needed segment: deleting the DONE's segment must not bring the delivered op back.
  it('never resurrects a delivered op when the segment holding its DONE record is deleted', async () => {
    const dir = tmpDir();
    const spool = await openSpool(dir, { maxBytes: 2 * MiB }); // 256 KiB segments
    const a = spool.accept(put('/a', 0, bytes(1, 200 * KiB)), NO_ORIGIN)!;
    const b = spool.accept(put('/b', 0, bytes(2, 100 * KiB)), NO_ORIGIN)!; // same segment as a
    const c = spool.accept(put('/c', 0, bytes(3, 100 * KiB)), NO_ORIGIN)!; // rotates: next segment
    expect(b.loc.segment).toBe(a.loc.segment);
    expect(c.loc.segment).toBe(a.loc.segment + 1);
    await spool.commit();
    await deliver(spool, [a]); // DONE(a) goes into c's segment
    await deliver(spool, [c]); // c's segment is now idle and is deleted, DONE(a) with it
    expect(spool.opCount).toBe(1);
    await spool.close();

    const again = await openSpool(dir);
    expect([...again.queue(HOST).values()].map((s) => s.op.path)).toEqual(['/b']);
  });

  describe('delivery waiters', () => {
    // waitDelivered resolves only once every op of the file accepted so far is delivered.
    it('resolves after the file is delivered', async () => {
      const spool = await openSpool(tmpDir());
      const [t, p1, other, p2] = acceptAll(spool, [truncate('/w', 0), put('/w', 0, Buffer.from('one')), put('/z', 0, Buffer.from('z')), put('/w', 3, Buffer.from('two'))]);
      let done = false;
      const wait = spool.waitDelivered(HOST, '/w').then(() => (done = true));
      spool.markDelivered([t!, p1!, other!]);
      await new Promise((r) => setImmediate(r));
      expect(done).toBe(false);
      spool.markDelivered([p2!]);
      await wait;
      expect(done).toBe(true);
      // nothing pending: resolves at once
      await spool.waitDelivered(HOST, '/w');
      await spool.waitDelivered(HOST, '/never-written');
    });

    // A blocked file rejects current and later waiters with DELIVERY_BLOCKED.
    it('rejects with DELIVERY_BLOCKED after block()', async () => {
      const spool = await openSpool(tmpDir());
      acceptAll(spool, [put('/blocked', 0, Buffer.from('data'))]);
      const wait = spool.waitDelivered(HOST, '/blocked');
      const file = spool.fileState(HOST, '/blocked')!;
      const blockedEvent = once(spool, 'blocked');
      spool.block(file, { code: 'PERMISSION', message: 'read-only target' });
      await expect(wait).rejects.toSatisfy((e: unknown) => e instanceof KangarooError && e.code === 'DELIVERY_BLOCKED');
      expect((await blockedEvent)[0]).toBe(file);
      await expect(spool.waitDelivered(HOST, '/blocked')).rejects.toMatchObject({ code: 'DELIVERY_BLOCKED' });
      // the data stays spooled
      expect(spool.opCount).toBe(1);
    });

    // retry() re-queues a blocked file's ops at the tail with new, higher localSeqs and the same data.
    it('re-queues a blocked file on retry', async () => {
      const dir = tmpDir();
      const spool = await openSpool(dir, { memoryBytes: 0 });
      const data = bytes(7, 50_000);
      const [t, p, other] = acceptAll(spool, [truncate('/r', 0), put('/r', 0, data), put('/other', 0, Buffer.from('o'))]);
      spool.block(spool.fileState(HOST, '/r')!, { code: 'NO_SPACE', message: 'disk full' });
      expect(await spool.retry(HOST, '/other')).toBe(0);
      expect(await spool.retry(HOST, '/r')).toBe(1);
      await vi.waitFor(() => expect([...spool.queue(HOST).keys()]).toEqual([other!.localSeq, 4, 5]));
      const requeued = [...spool.queue(HOST).values()].slice(1);
      expect(requeued.map((s) => s.localSeq).every((s) => s > p!.localSeq && s > t!.localSeq)).toBe(true);
      expect(await spool.materialize(requeued[0]!)).toEqual(truncate('/r', 0));
      expect(norm(await spool.materialize(requeued[1]!))).toEqual(norm(put('/r', 0, data)));
      expect(spool.fileState(HOST, '/r')!.blocked).toBeUndefined();

      // the retired records stay retired after a reopen
      await spool.commit();
      await spool.close();
      const again = await openSpool(dir);
      expect([...again.queue(HOST).keys()]).toEqual([3, 4, 5]);
      expect(norm(await again.materialize(again.queue(HOST).get(5)!))).toEqual(norm(put('/r', 0, data)));
    });
  });

  // A SIGKILL-like crash right after a commit: the newest segment ends in the direct writer's padding.
  it('recovers every committed op from a crash image whose newest segment ends in padding', async () => {
    const dir = tmpDir();
    const spool = await openSpool(dir, { memoryBytes: 0 });
    const ops = [...mixedOps(), put('/last', 0, bytes(99, 5001))];
    const last = acceptAll(spool, ops).pop()!;
    await spool.commit();
    const crash = tmpDir();
    fs.cpSync(dir, crash, { recursive: true });
    const seg = path.join(crash, 'journal', `seg-${String(last.loc.segment).padStart(8, '0')}.log`);
    const end = last.loc.offset + last.loc.length;
    expect(end % 4096).not.toBe(0);
    expect(fs.statSync(seg).size).toBe(Math.ceil(end / 4096) * 4096);

    const recovered = await openSpool(crash);
    expect(recovered.recovery!.tornTailBytes).toBe(0);
    expect(recovered.recovery!.corrupted).toEqual([]);
    expect((await pending(recovered)).map((g) => g.op)).toEqual(ops.map(norm));
    await recovered.close();
    await spool.close();
  });

  // A SIGKILL-like crash: the directory as it is after commit, with the newest record torn on disk.
  it('recovers every committed op but the torn one from a crash image', async () => {
    const dir = tmpDir();
    const spool = await openSpool(dir, { memoryBytes: 0 });
    const ops = [...mixedOps(), put('/last', 0, bytes(99, 5000))];
    const sops = acceptAll(spool, ops);
    await spool.commit();

    // copy the live directory (spool still open, never closed) and tear the last record in the copy
    const crash = tmpDir();
    fs.cpSync(dir, crash, { recursive: true });
    const last = sops[sops.length - 1]!;
    const seg = path.join(crash, 'journal', `seg-${String(last.loc.segment).padStart(8, '0')}.log`);
    // written past the page cache, the file ends in whole 4 KiB blocks (the last padded with zeros)
    const end = last.loc.offset + last.loc.length;
    expect(fs.statSync(seg).size).toBe(Math.ceil(end / 4096) * 4096);
    fs.truncateSync(seg, last.loc.offset + 100);

    const recovered = await openSpool(crash);
    expect(recovered.recovery!.tornTailBytes).toBe(RECORD_HEADER_BYTES + 100);
    expect(recovered.recovery!.corrupted).toEqual([]);
    const got = await pending(recovered);
    expect(got.map((g) => g.op)).toEqual(ops.slice(0, -1).map(norm));
    // the recovered spool keeps working: a new op lands after the survivors and survives reopen
    // (the torn op's seq may already be known to a checkpoint; it is never handed out twice)
    const next = recovered.accept(put('/after', 0, Buffer.from('after crash')), NO_ORIGIN)!;
    expect(next.localSeq).toBeGreaterThanOrEqual(ops.length);
    await recovered.close();
    const again = await openSpool(crash);
    expect((await pending(again)).map((g) => g.op)).toEqual([...ops.slice(0, -1), put('/after', 0, Buffer.from('after crash'))].map(norm));
  });

  // A corrupted op record in the middle costs that op only; later ops and DONE records still apply.
  it('recovers around a corrupted op record', async () => {
    const dir = tmpDir();
    const spool = await openSpool(dir, { memoryBytes: 0 });
    const ops = mixedOps();
    const sops = acceptAll(spool, ops);
    await deliver(spool, [sops[8]!]);
    await spool.close();
    const victim = sops[4]!; // put /d/g
    const seg = path.join(dir, 'journal', `seg-${String(victim.loc.segment).padStart(8, '0')}.log`);
    const buf = fs.readFileSync(seg);
    buf[victim.loc.offset + 3] ^= 0xff;
    fs.writeFileSync(seg, buf);

    const again = await openSpool(dir);
    expect(again.recovery!.corrupted).toHaveLength(1);
    const got = await pending(again);
    expect(got.map((g) => g.op)).toEqual(ops.filter((_, i) => i !== 4 && i !== 8).map(norm));
  });
});

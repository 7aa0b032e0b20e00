import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal, journalDiskBytes, RECORD_HEADER_BYTES, RecordLocation, RecoveredRecord } from '../../src/spool/journal.js';

const SEGMENT_BYTES = 4096;
const dirs: string[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kangaroo-journal-'));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Deterministic bytes, so a failing case replays the same way. */
function bytes(seed: number, size: number): Buffer {
  // (an empty cipher output has no backing store; see the crc32 test below for why that matters)
  if (size === 0) return Buffer.alloc(0);
  const key = crypto.createHash('sha256').update(`journal:${seed}`).digest();
  return crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

function segFile(dir: string, segment: number): string {
  return path.join(dir, `seg-${String(segment).padStart(8, '0')}.log`);
}

function segFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => /^seg-\d{8}\.log$/.test(n)).sort();
}

interface Written {
  kind: number;
  payload: Buffer;
  loc: RecordLocation;
}

const SIZES = [0, 1, 7, 100, 500, 1000, 3000, 4096, 5000, 12_000, 33, 2048, 64, 4000, 9];

/** Appends records of assorted sizes and kinds; with 4 KiB segments this spans several segments. */
function appendMany(journal: Journal, count = SIZES.length, seedBase = 0): Written[] {
  const out: Written[] = [];
  for (let i = 0; i < count; i++) {
    const payload = bytes(seedBase + i, SIZES[i % SIZES.length]!);
    const kind = 1 + ((seedBase + i) % 250);
    // split some payloads across chunks: the record must read back as one payload
    const chunks = payload.length > 10 && i % 2 === 0 ? [payload.subarray(0, 5), payload.subarray(5)] : [payload];
    out.push({ kind, payload, loc: journal.append(kind, chunks) });
  }
  return out;
}

function expectSameRecords(got: RecoveredRecord[], want: Written[]): void {
  expect(got.map((r) => r.kind)).toEqual(want.map((w) => w.kind));
  for (let i = 0; i < want.length; i++) {
    expect(got[i]!.payload.equals(want[i]!.payload), `record ${i} payload`).toBe(true);
    expect(got[i]!.loc).toEqual(want[i]!.loc);
  }
}

const noCheckpoint = () => [];

describe('Journal', () => {
  // An empty directory opens cleanly and starts segment 1 (the file exists at once).
  it('opens an empty directory', async () => {
    const dir = tmpDir();
    const { journal, records, report } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    expect(records).toEqual([]);
    expect(report).toEqual({ segments: 0, records: 0, tornTailBytes: 0, corrupted: [] });
    expect(journal.currentSegment).toBe(1);
    expect(journal.bytes).toBe(0);
    expect(segFiles(dir)).toEqual(['seg-00000001.log']);
    await journal.close();
  });

  // Every record comes back after reopen, in order, with its kind, payload and location.
  it('recovers records of many sizes across rotated segments', async () => {
    const dir = tmpDir();
    const first = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    const written = appendMany(first.journal);
    expect(first.journal.segments().length).toBeGreaterThan(3);
    await first.journal.sync();
    expect(first.journal.unwritten).toBe(0);
    const bytes = first.journal.bytes;
    await first.journal.close();
    // closed segments end at their last record (the direct writer's padding is cut off)
    expect(journalDiskBytes(dir)).toBe(bytes);

    const second = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    expect(second.report.tornTailBytes).toBe(0);
    expect(second.report.corrupted).toEqual([]);
    expect(second.report.records).toBe(written.length);
    expectSameRecords(second.records, written);
    // the reopened journal appends to a fresh segment after the old ones
    expect(second.journal.currentSegment).toBe(Math.max(...written.map((w) => w.loc.segment)) + 1);
    await second.journal.close();
  });

  // No segment grows past segmentBytes except by its last record.
  it('rotates once a segment reaches segmentBytes', async () => {
    const dir = tmpDir();
    const { journal } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    const written = appendMany(journal, 40);
    await journal.sync();
    const segments = journal.segments();
    await journal.close();
    for (const seg of segments) {
      const inSeg = written.filter((w) => w.loc.segment === seg);
      if (inSeg.length === 0) continue;
      const last = inSeg[inSeg.length - 1]!;
      const beforeLast = last.loc.offset - RECORD_HEADER_BYTES;
      expect(beforeLast).toBeLessThan(SEGMENT_BYTES);
      expect(fs.statSync(segFile(dir, seg)).size).toBe(last.loc.offset + last.loc.length);
    }
  });

  // read(loc) returns a record's payload, whole or in part, before and after reopen.
  it('reads payloads back by location', async () => {
    const dir = tmpDir();
    const first = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    const written = appendMany(first.journal);
    // read before any explicit flush: read waits for the write itself
    const big = written.find((w) => w.payload.length === 5000)!;
    expect((await first.journal.read(big.loc)).equals(big.payload)).toBe(true);
    for (const w of written) expect((await first.journal.read(w.loc)).equals(w.payload)).toBe(true);
    expect((await first.journal.read(big.loc, 100, 50)).equals(big.payload.subarray(100, 150))).toBe(true);
    await first.journal.close();

    const second = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    for (const r of second.records) {
      const w = written.find((x) => x.loc.segment === r.loc.segment && x.loc.offset === r.loc.offset)!;
      expect((await second.journal.read(r.loc)).equals(w.payload)).toBe(true);
    }
    await second.journal.close();
  });

  describe('torn tail', () => {
    async function writeAndClose(dir: string): Promise<Written[]> {
      const { journal } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      const written = appendMany(journal);
      await journal.sync();
      await journal.close();
      return written;
    }

    // A crash mid-write leaves half a record: reopen drops just that record and truncates the file.
    it('drops a half-written last record and truncates the file', async () => {
      const dir = tmpDir();
      const written = await writeAndClose(dir);
      const last = written[written.length - 1]!;
      const file = segFile(dir, last.loc.segment);
      const recordStart = last.loc.offset - RECORD_HEADER_BYTES;
      const cut = recordStart + Math.floor((RECORD_HEADER_BYTES + last.loc.length) / 2);
      fs.truncateSync(file, cut);

      const second = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(second.report.tornTailBytes).toBe(cut - recordStart);
      expect(second.report.corrupted).toEqual([]);
      expectSameRecords(second.records, written.slice(0, -1));
      expect(fs.statSync(file).size).toBe(recordStart);

      // appends after the repair survive another reopen, after the repaired records
      const more = appendMany(second.journal, 5, 1000);
      await second.journal.close();
      const third = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(third.report.tornTailBytes).toBe(0);
      expect(third.report.corrupted).toEqual([]);
      expectSameRecords(third.records, [...written.slice(0, -1), ...more]);
      for (const w of more) expect((await third.journal.read(w.loc)).equals(w.payload)).toBe(true);
      await third.journal.close();
    });

    // A torn header (fewer than 9 bytes of the last record) is a torn tail too.
    it('drops a record torn inside its header', async () => {
      const dir = tmpDir();
      const written = await writeAndClose(dir);
      const last = written[written.length - 1]!;
      const recordStart = last.loc.offset - RECORD_HEADER_BYTES;
      fs.truncateSync(segFile(dir, last.loc.segment), recordStart + 3);
      const second = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(second.report.tornTailBytes).toBe(3);
      expectSameRecords(second.records, written.slice(0, -1));
      await second.journal.close();
    });

    // Garbage after the last record (e.g. a preallocated or half-flushed block) is cut off; no record is lost.
    it('cuts garbage appended after the last record', async () => {
      const dir = tmpDir();
      const written = await writeAndClose(dir);
      const last = written[written.length - 1]!;
      const file = segFile(dir, last.loc.segment);
      const validSize = fs.statSync(file).size;
      fs.appendFileSync(file, bytes(424242, 37));

      const second = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(second.report.tornTailBytes).toBe(37);
      expect(second.report.corrupted).toEqual([]);
      expectSameRecords(second.records, written);
      expect(fs.statSync(file).size).toBe(validSize);
      const more = appendMany(second.journal, 3, 2000);
      await second.journal.close();

      const third = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expectSameRecords(third.records, [...written, ...more]);
      await third.journal.close();
    });

    // Zero-filled tail (a filesystem extended the file but the data never landed) is a torn tail.
    it('cuts a zero-filled tail', async () => {
      const dir = tmpDir();
      const written = await writeAndClose(dir);
      const file = segFile(dir, written[written.length - 1]!.loc.segment);
      fs.appendFileSync(file, Buffer.alloc(4096));
      const second = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(second.report.tornTailBytes).toBe(4096);
      expectSameRecords(second.records, written);
      await second.journal.close();
    });
  });

  describe('corruption in the middle', () => {
    async function setup(): Promise<{ dir: string; written: Written[] }> {
      const dir = tmpDir();
      const { journal } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      const written = appendMany(journal, 30);
      // small records at the end, so the newest segment holds several
      for (let i = 0; i < 3; i++) {
        const payload = bytes(500 + i, 50);
        written.push({ kind: 77, payload, loc: journal.append(77, [payload]) });
      }
      await journal.close();
      return { dir, written };
    }

    function flip(file: string, at: number): void {
      const data = fs.readFileSync(file);
      data[at] = data[at]! ^ 0x5a;
      fs.writeFileSync(file, data);
    }

    function pick(written: Written[], segment: number, minLength: number): number {
      const i = written.findIndex((w, j) => w.loc.segment === segment && w.loc.length >= minLength && j < written.length - 1 && written[j + 1]!.loc.segment === segment);
      expect(i, 'a record with a successor in the same segment').toBeGreaterThanOrEqual(0);
      return i;
    }

    // One flipped payload byte in an older segment costs exactly that record; reading resumes after it.
    it('skips a corrupted record in an older segment and recovers the rest', async () => {
      const { dir, written } = await setup();
      const segs = [...new Set(written.map((w) => w.loc.segment))];
      const older = segs[0]!;
      const i = pick(written, older, 10);
      const victim = written[i]!;
      flip(segFile(dir, older), victim.loc.offset + 5);

      const { journal, records, report } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(report.corrupted).toEqual([
        { segment: older, offset: victim.loc.offset - RECORD_HEADER_BYTES, skippedBytes: RECORD_HEADER_BYTES + victim.loc.length },
      ]);
      expect(report.tornTailBytes).toBe(0);
      expectSameRecords(records, written.filter((_, j) => j !== i));
      await journal.close();
    });

    // A corrupted record in the newest segment with valid records after it is corruption, not a torn tail.
    it('skips a corrupted record in the newest segment without truncating what follows', async () => {
      const { dir, written } = await setup();
      const newest = Math.max(...written.map((w) => w.loc.segment));
      const inNewest = written.filter((w) => w.loc.segment === newest);
      expect(inNewest.length).toBeGreaterThanOrEqual(2);
      const i = written.indexOf(inNewest[0]!);
      const victim = written[i]!;
      const file = segFile(dir, newest);
      const size = fs.statSync(file).size;
      // the kind byte is covered by the checksum too
      flip(file, victim.loc.offset - 1);

      const { journal, records, report } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(report.corrupted).toEqual([
        { segment: newest, offset: victim.loc.offset - RECORD_HEADER_BYTES, skippedBytes: RECORD_HEADER_BYTES + victim.loc.length },
      ]);
      expect(report.tornTailBytes).toBe(0);
      expect(fs.statSync(file).size).toBe(size);
      expectSameRecords(records, written.filter((_, j) => j !== i));
      await journal.close();
    });

    // A flipped length field must not make the reader swallow or misframe the records after it.
    it('resyncs after a corrupted length field', async () => {
      const { dir, written } = await setup();
      const older = written[0]!.loc.segment;
      const i = pick(written, older, 0);
      const victim = written[i]!;
      flip(segFile(dir, older), victim.loc.offset - RECORD_HEADER_BYTES + 2);

      const { journal, records, report } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(report.corrupted).toHaveLength(1);
      expect(report.corrupted[0]!.offset).toBe(victim.loc.offset - RECORD_HEADER_BYTES);
      expectSameRecords(records, written.filter((_, j) => j !== i));
      await journal.close();
    });

    // Corruption spread over several segments: each bad record is reported once, nothing invented.
    it('reports each corrupted record and returns only intact ones', async () => {
      const { dir, written } = await setup();
      const victims = new Set<number>();
      for (const seg of new Set(written.map((w) => w.loc.segment))) {
        const idx = written.findIndex((w, j) => w.loc.segment === seg && w.loc.length > 20 && j + 1 < written.length && written[j + 1]!.loc.segment === seg);
        if (idx < 0) continue;
        victims.add(idx);
        flip(segFile(dir, seg), written[idx]!.loc.offset + 11);
      }
      expect(victims.size).toBeGreaterThanOrEqual(2);
      const { journal, records, report } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
      expect(report.corrupted).toHaveLength(victims.size);
      expectSameRecords(records, written.filter((_, j) => !victims.has(j)));
      await journal.close();
    });
  });

  // deleteSegment removes an older file and its bytes; the current segment is never deleted.
  it('deletes old segments but never the current one', async () => {
    const dir = tmpDir();
    const { journal } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    const written = appendMany(journal);
    await journal.sync();
    const [oldest] = journal.segments();
    const before = journal.bytes;
    const oldestBytes = fs.statSync(segFile(dir, oldest!)).size;

    await journal.deleteSegment(oldest!);
    expect(fs.existsSync(segFile(dir, oldest!))).toBe(false);
    expect(journal.segments()).not.toContain(oldest);
    expect(journal.bytes).toBe(before - oldestBytes);

    const current = journal.currentSegment;
    await journal.deleteSegment(current);
    expect(fs.existsSync(segFile(dir, current))).toBe(true);
    expect(journal.segments()).toContain(current);
    // deleting an unknown or already deleted segment is a no-op
    await journal.deleteSegment(oldest!);
    await journal.deleteSegment(9999);

    // the current segment still takes appends
    const after = journal.append(7, [Buffer.from('still here')]);
    await journal.close();

    const reopened = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    const expected = written.filter((w) => w.loc.segment !== oldest);
    expectSameRecords(reopened.records.slice(0, -1), expected);
    expect(reopened.records.at(-1)!.loc).toEqual(after);
    await reopened.journal.close();
  });

  // Checkpoint records from onNewSegment open every new segment: on rotation, explicit rotate and reopen.
  it('writes onNewSegment records first in each new segment', async () => {
    const dir = tmpDir();
    const seen: number[] = [];
    const checkpoint = (segment: number) => {
      seen.push(segment);
      return [
        { kind: 200, payload: [Buffer.from(`checkpoint ${segment}`)] },
        { kind: 201, payload: [Buffer.from('second'), Buffer.from(` ${segment}`)] },
      ];
    };
    const first = await Journal.open(dir, SEGMENT_BYTES, checkpoint);
    appendMany(first.journal);
    first.journal.rotate();
    first.journal.append(9, [Buffer.from('after explicit rotate')]);
    await first.journal.close();

    const second = await Journal.open(dir, SEGMENT_BYTES, checkpoint);
    const bySegment = new Map<number, RecoveredRecord[]>();
    for (const r of second.records) {
      if (!bySegment.has(r.loc.segment)) bySegment.set(r.loc.segment, []);
      bySegment.get(r.loc.segment)!.push(r);
    }
    expect(bySegment.size).toBeGreaterThan(3);
    for (const [segment, recs] of bySegment) {
      expect(recs[0]!.kind).toBe(200);
      expect(recs[0]!.payload.toString()).toBe(`checkpoint ${segment}`);
      expect(recs[0]!.loc.offset).toBe(RECORD_HEADER_BYTES);
      expect(recs[1]!.kind).toBe(201);
      expect(recs[1]!.payload.toString()).toBe(`second ${segment}`);
      expect(recs.slice(2).every((r) => r.kind !== 200)).toBe(true);
    }
    // the segment opened by the second open got its checkpoint too
    const current = second.journal.currentSegment;
    expect(seen.at(-1)).toBe(current);
    await second.journal.close();
    const third = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    const inCurrent = third.records.filter((r) => r.loc.segment === current);
    expect(inCurrent.map((r) => r.payload.toString())).toEqual([`checkpoint ${current}`, `second ${current}`]);
    await third.journal.close();
  });

  // Node's zlib.crc32 returns 0 for an empty view with no backing store (zlib's crc32(seed, NULL, 0) = 0),
  // so an empty payload chunk such as Buffer.from(new ArrayBuffer(0)) must not reset the checksum.
  it('keeps records whose payload has an empty chunk without backing store', async () => {
    const dir = tmpDir();
    const first = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    const a = first.journal.append(3, [Buffer.from(new ArrayBuffer(0))]);
    const b = first.journal.append(4, [Buffer.from('head'), Buffer.from(new ArrayBuffer(0)), Buffer.from('tail')]);
    await first.journal.close();
    const second = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    expect(second.report.corrupted).toEqual([]);
    expect(second.records.map((r) => [r.kind, r.payload.toString(), r.loc])).toEqual([
      [3, '', a],
      [4, 'headtail', b],
    ]);
    await second.journal.close();
  });

  // sync() promises every record appended before it is fsync'd. An earlier sync still running took
  // the dirty segments; a later one that finds them clean (nothing new, or new records in another
  // segment only) must not answer before that sync's fsyncs are done: the earlier one resolves first.
  it('a sync resolves only after an earlier sync still running', async () => {
    const dir = tmpDir();
    const { journal } = await Journal.open(dir, 64 * 1024 * 1024, noCheckpoint);
    const chunk = bytes(1, 1024 * 1024);
    const orders: Record<string, string[]> = {};
    for (const newSegment of [false, true]) {
      // 24 MiB for the first sync to fsync ...
      for (let i = 0; i < 24; i++) journal.append(1, [chunk]);
      await journal.flush();
      const order: string[] = (orders[newSegment ? 'new record in another segment' : 'nothing new'] = []);
      const first = journal.sync().then(() => order.push('first'));
      // (with nothing left to write, the first sync takes the dirty segment before this resumes)
      await journal.flush();
      // ... and a second sync right behind it, with nothing new or one small record in a fresh segment
      if (newSegment) {
        journal.rotate();
        journal.append(2, [Buffer.from('small')]);
      }
      const second = journal.sync().then(() => order.push('second'));
      await Promise.all([first, second]);
    }
    await journal.close();
    expect(orders).toEqual({ 'nothing new': ['first', 'second'], 'new record in another segment': ['first', 'second'] });
  });

  // After close, appends are refused with CLOSED rather than silently lost.
  it('refuses appends after close', async () => {
    const dir = tmpDir();
    const { journal } = await Journal.open(dir, SEGMENT_BYTES, noCheckpoint);
    await journal.close();
    expect(() => journal.append(1, [Buffer.from('x')])).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  // The mover reads records back while writers keep appending: a read waits for its own
  // record to reach the file, not for a queue that never empties.
  it('reads a record back while later appends keep the writer busy', async () => {
    const { journal } = await Journal.open(tmpDir(), 64 * 1024 * 1024, noCheckpoint);
    const early = bytes(1, 1024 * 1024);
    const loc = journal.append(1, [early]);
    const more = bytes(2, 1024 * 1024);
    let appending = true;
    let turns = 0;
    const keepAppending = (async () => {
      for (; appending && turns < 500; turns++) {
        for (let k = 0; k < 4; k++) journal.append(1, [more]);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const got = await journal.read(loc);
    const whileAppending = appending && turns < 500;
    appending = false;
    await keepAppending;
    await journal.close();
    expect(got.equals(early)).toBe(true);
    expect(whileAppending).toBe(true);
  });
});

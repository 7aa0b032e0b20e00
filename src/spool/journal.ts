import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { KangarooError } from '../errors.js';
import { crc32, crc32Combine } from '../util/crc32.js';
import { DirectWriter, isPadding } from './direct-writer.js';

/**
 * An append-only journal split into numbered segment files. Each record is
 *
 *   u32 length   of kind + payload
 *   u32 crc32    of kind + payload
 *   u8  kind
 *   ...          payload
 *
 * Appends are queued and written in order by one writer; `sync()` resolves once
 * every earlier append is written and fsync'd. Opening a journal reads every
 * segment up to its first bad record: a bad tail of the newest segment (a torn
 * write) is truncated, and a bad record elsewhere is reported as corruption; the
 * reader then looks for the next valid record so one flipped byte costs one record.
 * New segments are written past the page cache where the disk allows (DirectWriter).
 * Whole segments are deleted by the owner once nothing in them is needed.
 */

export const RECORD_HEADER_BYTES = 9;
const SEGMENT_PATTERN = /^seg-(\d{8})\.log$/;

export interface RecordLocation {
  segment: number;
  /** Offset of the record's payload (after its header) in the segment file. */
  offset: number;
  length: number;
}

export interface RecoveredRecord {
  kind: number;
  payload: Buffer;
  loc: RecordLocation;
}

export interface RecoveryReport {
  segments: number;
  records: number;
  tornTailBytes: number;
  corrupted: { segment: number; offset: number; skippedBytes: number }[];
}

interface PendingWrite {
  segment: number;
  chunks: Buffer[];
  bytes: number;
  /** Called once the chunks are no longer needed (written, or never to be). */
  done?: (() => void)[];
}

export class Journal {
  private fds = new Map<number, fsp.FileHandle>();
  private sizes = new Map<number, number>();
  private writtenEnd = new Map<number, number>();
  private dirty = new Set<number>();
  private queue: PendingWrite[] = [];
  private writing: Promise<void> | undefined;
  private writeError: KangarooError | undefined;
  /** The newest sync's fsyncs and those of every earlier sync still running (see sync). */
  private syncing: Promise<void> | undefined;
  private unwrittenBytes = 0;
  /** Readers of records still in the queue, woken as the writer reaches them. */
  private writeWaiters: { loc: RecordLocation; resolve: () => void }[] = [];
  private current = 0;
  private closed = false;
  /** The segment being written with O_DIRECT, and its writer (see DirectWriter). */
  private direct: { segment: number; writer: DirectWriter } | undefined;
  /** Set once the disk refused a direct write: writes go through the page cache. */
  private buffered = false;
  /** Called after each write to disk (unwritten bytes went down). */
  onWritten: (() => void) | undefined;

  private constructor(
    readonly dir: string,
    private readonly segmentBytes: number,
    /** Called when a new segment starts; its records open the segment (checkpoints). */
    private readonly onNewSegment: (segment: number) => { kind: number; payload: Buffer[] }[],
  ) {}

  static async open(
    dir: string,
    segmentBytes: number,
    onNewSegment: (segment: number) => { kind: number; payload: Buffer[] }[],
  ): Promise<{ journal: Journal; records: RecoveredRecord[]; report: RecoveryReport }> {
    await fsp.mkdir(dir, { recursive: true });
    const journal = new Journal(dir, segmentBytes, onNewSegment);
    const names = (await fsp.readdir(dir)).filter((n) => SEGMENT_PATTERN.test(n)).sort();
    const report: RecoveryReport = { segments: names.length, records: 0, tornTailBytes: 0, corrupted: [] };
    const records: RecoveredRecord[] = [];
    for (let i = 0; i < names.length; i++) {
      const segment = Number(SEGMENT_PATTERN.exec(names[i]!)![1]);
      const file = path.join(dir, names[i]!);
      const data = await fsp.readFile(file);
      const validEnd = scanSegment(segment, data, records, report, i === names.length - 1);
      if (validEnd < data.length) {
        if (!isPadding(data, validEnd)) report.tornTailBytes += data.length - validEnd;
        await fsp.truncate(file, validEnd);
      }
      journal.sizes.set(segment, validEnd);
      journal.writtenEnd.set(segment, validEnd);
      journal.current = segment;
    }
    report.records = records.length;
    await journal.startSegment(journal.current + 1);
    return { journal, records, report };
  }

  private segmentPath(segment: number): string {
    return path.join(this.dir, `seg-${String(segment).padStart(8, '0')}.log`);
  }

  private async startSegment(segment: number): Promise<void> {
    const fd = await fsp.open(this.segmentPath(segment), 'a+');
    this.fds.set(segment, fd);
    this.sizes.set(segment, 0);
    this.current = segment;
    for (const r of this.onNewSegment(segment)) this.appendTo(segment, r.kind, r.payload);
  }

  /** Bytes on disk plus bytes queued for disk, over all live segments. */
  get bytes(): number {
    let total = 0;
    for (const s of this.sizes.values()) total += s;
    return total;
  }

  get currentSegment(): number {
    return this.current;
  }

  get unwritten(): number {
    return this.unwrittenBytes;
  }

  segments(): number[] {
    return [...this.sizes.keys()].sort((a, b) => a - b);
  }

  /**
   * Queues a record for writing; its location is known at once. Rotates to a new
   * segment first when the current one is full. `payloadCrc`, the CRC-32 of the
   * payload when the caller knows it, spares a pass over it. `done` is called once
   * the journal holds no reference to the payload any more, so its buffers can be
   * reused (after the write, failed or not).
   */
  append(kind: number, payload: Buffer[], payloadCrc?: number, done?: () => void): RecordLocation {
    if (this.closed) throw new KangarooError('CLOSED', 'journal is closed');
    if (this.writeError) throw this.writeError;
    if ((this.sizes.get(this.current) ?? 0) >= this.segmentBytes) this.rotate();
    return this.appendTo(this.current, kind, payload, payloadCrc, done);
  }

  /** Bytes in the segment currently appended to. */
  get currentBytes(): number {
    return this.sizes.get(this.current) ?? 0;
  }

  /** Starts a new segment so the current one can be deleted once nothing in it is needed. */
  rotate(): void {
    const next = this.current + 1;
    this.current = next;
    this.sizes.set(next, 0);
    // The file is opened by the writer, in order with the queued writes.
    for (const r of this.onNewSegment(next)) this.appendTo(next, r.kind, r.payload);
  }

  private appendTo(segment: number, kind: number, payload: Buffer[], payloadCrc?: number, done?: () => void): RecordLocation {
    let length = 1;
    for (const p of payload) length += p.length;
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
    header.writeUInt32BE(length, 0);
    header.writeUInt8(kind, 8);
    let crc = crc32(header.subarray(8, 9));
    if (payloadCrc === undefined) for (const p of payload) crc = crc32(p, crc);
    else crc = crc32Combine(crc, payloadCrc, length - 1);
    header.writeUInt32BE(crc, 4);
    const start = this.sizes.get(segment) ?? 0;
    const bytes = RECORD_HEADER_BYTES + length - 1;
    this.sizes.set(segment, start + bytes);
    const last = this.queue[this.queue.length - 1];
    if (last && last.segment === segment && last.chunks.length < 512) {
      last.chunks.push(header, ...payload);
      last.bytes += bytes;
      if (done) (last.done ??= []).push(done);
    } else {
      this.queue.push({ segment, chunks: [header, ...payload], bytes, done: done && [done] });
    }
    this.unwrittenBytes += bytes;
    this.dirty.add(segment);
    this.kick();
    return { segment, offset: start + RECORD_HEADER_BYTES, length: length - 1 };
  }

  private kick(): void {
    if (!this.writing) this.writing = this.writeLoop().finally(() => (this.writing = undefined));
  }

  private async writeLoop(): Promise<void> {
    while (this.queue.length > 0) {
      const w = this.queue.shift()!;
      try {
        let fd = this.fds.get(w.segment);
        if (!fd) {
          fd = await fsp.open(this.segmentPath(w.segment), 'a+');
          this.fds.set(w.segment, fd);
        }
        if (!(await this.writeDirect(w))) {
          let chunks = w.chunks;
          let remaining = w.bytes;
          while (remaining > 0) {
            const { bytesWritten } = await fd.writev(chunks);
            remaining -= bytesWritten;
            if (remaining > 0) chunks = skipBytes(chunks, bytesWritten);
          }
        }
      } catch (err) {
        this.writeError = KangarooError.from(err, 'spool write failed');
        for (const dropped of this.queue) {
          this.unwrittenBytes -= dropped.bytes;
          dropped.done?.forEach((f) => f());
        }
        this.queue = [];
      }
      w.done?.forEach((f) => f());
      this.unwrittenBytes -= w.bytes;
      this.writtenEnd.set(w.segment, (this.writtenEnd.get(w.segment) ?? 0) + w.bytes);
      this.wakeReaders();
      this.onWritten?.();
    }
    this.wakeReaders();
  }

  /** Writes `w` with O_DIRECT where it can; false when it must go through the page cache. */
  private async writeDirect(w: PendingWrite): Promise<boolean> {
    if (this.buffered) return false;
    if (this.direct?.segment !== w.segment) {
      // segments are written in order: the one before is complete
      const done = this.direct;
      this.direct = undefined;
      await done?.writer.close();
      // only segments this journal starts: recovered ones are never appended to
      if ((this.writtenEnd.get(w.segment) ?? 0) !== 0) return false;
      const writer = await DirectWriter.open(this.segmentPath(w.segment));
      if (!writer) {
        this.buffered = true;
        return false;
      }
      this.direct = { segment: w.segment, writer };
    }
    const writer = this.direct.writer;
    try {
      await writer.write(w.chunks);
      return true;
    } catch (err) {
      // a file system that opens with O_DIRECT but refuses the writes: nothing of this
      // segment reached it, so the page cache takes over from its start
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL' || writer.written > 0) throw err;
      this.buffered = true;
      this.direct = undefined;
      await writer.close();
      return false;
    }
  }

  private wakeReaders(): void {
    if (this.writeWaiters.length === 0) return;
    const failed = this.writeError !== undefined || this.queue.length === 0;
    this.writeWaiters = this.writeWaiters.filter((w) => {
      if (!failed && !this.isWritten(w.loc)) return true;
      w.resolve();
      return false;
    });
  }

  /** True once the record at `loc` has reached the file (readable with `read`). */
  isWritten(loc: RecordLocation): boolean {
    return (this.writtenEnd.get(loc.segment) ?? 0) >= loc.offset + loc.length;
  }

  /** Resolves when every record appended so far is written (not necessarily fsync'd). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.writeError) throw this.writeError;
  }

  /**
   * Resolves when every record appended so far is on stable storage. A sync still
   * running (a commit's, or one that carried DONE records before deleting segments)
   * took dirty segments this one now finds clean, and records appended before this
   * call may be in them: so this one resolves only after that sync's fsyncs too. Its
   * own fsyncs start at once all the same.
   */
  async sync(): Promise<void> {
    await this.flush();
    const dirty = [...this.dirty];
    this.dirty.clear();
    const own = Promise.all(dirty.map((s) => this.fds.get(s)?.sync())).catch((err) => {
      // A failed fsync is final, like a failed write: the segments were taken off `dirty`, and
      // the kernel may have dropped their unwritten pages and marked them clean (Linux does after
      // a writeback error), so a later fsync would succeed without the data. Every later sync,
      // commit and append fails with this error instead of promising what may not be on disk.
      this.writeError ??= new KangarooError(
        KangarooError.from(err).code,
        `the spool's disk failed an fsync (${(err as Error).message}): data accepted since the last good commit may not be on disk; restart the relay to recover from the journal`,
        { cause: err },
      );
      throw this.writeError;
    });
    const done = Promise.all([this.syncing, own]).then(() => undefined);
    this.syncing = done;
    const settle = () => {
      if (this.syncing === done) this.syncing = undefined;
    };
    done.then(settle, settle);
    await done;
  }

  /** Reads a record's payload (or part of it) back from disk. */
  async read(loc: RecordLocation, from = 0, length = loc.length - from): Promise<Buffer> {
    // wait for this record only: writers keep appending, so the queue may never be empty
    if (!this.isWritten(loc) && this.writing) await new Promise<void>((resolve) => this.writeWaiters.push({ loc, resolve }));
    if (this.writeError) throw this.writeError;
    const fd = this.fds.get(loc.segment);
    const buf = Buffer.allocUnsafe(length);
    if (fd) {
      const { bytesRead } = await fd.read(buf, 0, length, loc.offset + from);
      if (bytesRead !== length) throw new KangarooError('IO', `short read from spool segment ${loc.segment}`);
    } else {
      const h = await fsp.open(this.segmentPath(loc.segment), 'r');
      try {
        const { bytesRead } = await h.read(buf, 0, length, loc.offset + from);
        if (bytesRead !== length) throw new KangarooError('IO', `short read from spool segment ${loc.segment}`);
      } finally {
        await h.close();
      }
    }
    return buf;
  }

  /** Deletes a segment that holds nothing needed any more. The current segment is never deleted. */
  async deleteSegment(segment: number): Promise<void> {
    if (segment === this.current || !this.sizes.has(segment)) return;
    await this.flush();
    this.sizes.delete(segment);
    this.writtenEnd.delete(segment);
    this.dirty.delete(segment);
    const direct = this.direct;
    if (direct?.segment === segment) {
      this.direct = undefined;
      await direct.writer.close();
    }
    const fd = this.fds.get(segment);
    this.fds.delete(segment);
    await fd?.close();
    await fsp.rm(this.segmentPath(segment), { force: true });
  }

  /** Syncs what was appended and closes the files; appends from now on fail with CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    // refuse appends first: one made while the sync below runs would start the write loop
    // again, on a writer closed under it
    this.closed = true;
    await this.sync().catch(() => undefined);
    await this.flush().catch(() => undefined);
    await this.direct?.writer.close().catch(() => undefined);
    this.direct = undefined;
    for (const fd of this.fds.values()) await fd.close().catch(() => undefined);
    this.fds.clear();
  }
}

function skipBytes(chunks: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) {
    if (n >= c.length) {
      n -= c.length;
      continue;
    }
    out.push(n > 0 ? c.subarray(n) : c);
    n = 0;
  }
  return out;
}

/**
 * Reads records from one segment's bytes into `out`. Returns the offset where
 * valid data ends; for the newest segment, bytes past it are a torn tail.
 */
function scanSegment(
  segment: number,
  data: Buffer,
  out: RecoveredRecord[],
  report: RecoveryReport,
  newest: boolean,
): number {
  let pos = 0;
  let validEnd = 0;
  while (pos < data.length) {
    const rec = readRecordAt(data, pos);
    if (rec) {
      out.push({ kind: rec.kind, payload: rec.payload, loc: { segment, offset: pos + RECORD_HEADER_BYTES, length: rec.payload.length } });
      pos += RECORD_HEADER_BYTES + rec.payload.length;
      validEnd = pos;
      continue;
    }
    // zeros to the end: a direct write's padding of the last block, not damage
    if (isPadding(data, pos)) return pos;
    // Look for the next valid record: if there is one, this is corruption, not a torn tail.
    let next = -1;
    for (let p = pos + 1; p + RECORD_HEADER_BYTES <= data.length; p++) {
      if (readRecordAt(data, p)) {
        next = p;
        break;
      }
    }
    if (next < 0) {
      if (!newest) report.corrupted.push({ segment, offset: pos, skippedBytes: data.length - pos });
      return newest ? validEnd : data.length;
    }
    report.corrupted.push({ segment, offset: pos, skippedBytes: next - pos });
    pos = next;
  }
  return newest ? validEnd : data.length;
}

function readRecordAt(data: Buffer, pos: number): { kind: number; payload: Buffer } | undefined {
  if (pos + RECORD_HEADER_BYTES > data.length) return undefined;
  const length = data.readUInt32BE(pos);
  if (length < 1 || pos + 8 + length > data.length) return undefined;
  const crc = data.readUInt32BE(pos + 4);
  if (crc32(data.subarray(pos + 8, pos + 8 + length)) !== crc) return undefined;
  return { kind: data.readUInt8(pos + 8), payload: data.subarray(pos + RECORD_HEADER_BYTES, pos + 8 + length) };
}

/** Synchronous size probe for tests and status: the journal's files as they are on disk. */
export function journalDiskBytes(dir: string): number {
  let total = 0;
  for (const n of fs.readdirSync(dir)) if (SEGMENT_PATTERN.test(n)) total += fs.statSync(path.join(dir, n)).size;
  return total;
}

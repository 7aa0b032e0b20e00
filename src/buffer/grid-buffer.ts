import { KangarooError } from '../errors.js';
import { ChunkStore } from './chunk-store.js';
import { Extents } from './extents.js';

/**
 * A grid buffer (GriddLeS pipe mode): one writer puts blocks at offsets, any
 * number of readers get ranges, and a reader blocks until the bytes exist, or
 * gets a short read / end of file once the writer has closed.
 *
 * Flow control: bytes are held from the slowest reader's position up to the
 * end written; a writer that would hold more than the budget waits (never
 * fails). Bytes every reader has consumed are freed. A reader silent for
 * longer than its claim time no longer holds data back.
 *
 * Failures: a writer that vanishes without closing gets a grace period to come
 * back; after it, readers get EIO. A reader that opens and no writer ever comes
 * gets ETIMEDOUT after the wait limit. Nothing here ever hangs for ever.
 */

export interface BufferLimits {
  /** Per-buffer memory tier; beyond it, chunks go to the relay's disk. */
  memoryBytes: number;
  /** Bytes held (memory and disk) before the writer is made to wait. */
  budgetBytes: number;
  /** How long readers wait for a writer that vanished without closing. */
  writerGraceMs: number;
  /** How long a reader waits for a first writer. */
  noWriterWaitMs: number;
  /** A reader silent this long no longer holds data back. */
  readerClaimMs: number;
  /** A buffer nobody touched this long is dropped. */
  idleMs: number;
}

export const DEFAULT_BUFFER_LIMITS: BufferLimits = {
  memoryBytes: 16 * 1024 * 1024,
  budgetBytes: 1024 * 1024 * 1024,
  writerGraceMs: 30_000,
  noWriterWaitMs: 120_000,
  readerClaimMs: 300_000,
  idleMs: 600_000,
};

type WriterState = 'none' | 'attached' | 'closed' | 'lost';

interface ReaderClaim {
  pos: number;
  lastActive: number;
}

export class GridBuffer {
  writerState: WriterState = 'none';
  private writerId: number | undefined;
  private lostAt = 0;
  private readonly createdAt = Date.now();
  lastActivity = Date.now();
  private readers = new Map<number, ReaderClaim>();
  private everHadReader = false;
  private extents = new Extents();
  private floor = 0;
  private failure: KangarooError | undefined;
  private waiters: (() => void)[] = [];
  bytesWritten = 0;
  bytesRead = 0;
  private readonly store: ChunkStore;

  constructor(
    readonly name: string,
    dir: string,
    private readonly limits: BufferLimits,
    private readonly log: (msg: string) => void,
  ) {
    this.store = new ChunkStore(dir, limits.memoryBytes);
  }

  /** Bytes written so far: what getattr reports. */
  get size(): number {
    return this.extents.end;
  }

  get held(): number {
    return Math.max(0, this.extents.end - this.floor);
  }

  get readerCount(): number {
    return this.readers.size;
  }

  get memoryBytes(): number {
    return this.store.memoryBytes;
  }

  get diskBytes(): number {
    return this.store.diskBytes;
  }

  private touch(): void {
    this.lastActivity = Date.now();
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next change, or after `ms`. */
  private changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, Math.max(1, Math.min(ms, 2 ** 31 - 1)));
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  attachWriter(id: number): void {
    this.touch();
    if (this.writerState === 'attached') {
      throw new KangarooError('BUSY', `buffer ${this.name} already has a writer; a buffer takes one writer at a time`);
    }
    if (this.writerState === 'closed') {
      throw new KangarooError('BUSY', `buffer ${this.name} was written and closed; it goes away once its readers finish`);
    }
    if (this.writerState === 'lost') this.log(`buffer ${this.name}: writer came back within the grace period`);
    if (this.failure) throw this.failure;
    this.writerState = 'attached';
    this.writerId = id;
    this.notify();
  }

  attachReader(id: number): void {
    this.touch();
    this.readers.set(id, { pos: this.floor, lastActive: Date.now() });
    this.everHadReader = true;
  }

  /** A clean close (end of file for readers) or, with `abandoned`, a writer that vanished. */
  detach(id: number, abandoned: boolean): void {
    this.touch();
    if (id === this.writerId) {
      this.writerId = undefined;
      if (abandoned && this.writerState === 'attached') {
        this.writerState = 'lost';
        this.lostAt = Date.now();
        this.log(`buffer ${this.name}: writer went away without closing; readers wait ${this.limits.writerGraceMs} ms for it`);
      } else if (this.writerState === 'attached') {
        this.writerState = 'closed';
      }
    } else {
      this.readers.delete(id);
      this.advanceFloor();
    }
    this.notify();
  }

  /** Readers still holding data back: those heard from within the claim time. */
  private advanceFloor(): void {
    const now = Date.now();
    let min = Number.POSITIVE_INFINITY;
    let active = 0;
    for (const r of this.readers.values()) {
      if (now - r.lastActive > this.limits.readerClaimMs) continue;
      active++;
      min = Math.min(min, r.pos);
    }
    let next = this.floor;
    if (active > 0) next = min;
    else if (this.readers.size > 0) next = this.extents.end; // every reader went silent: their claims expired
    if (next > this.floor) {
      this.floor = next;
      this.extents.dropBelow(next);
      void this.store.freeBelow(next);
      this.notify();
    }
  }

  async write(offset: number, data: Buffer): Promise<void> {
    const end = offset + data.length;
    for (;;) {
      if (this.failure) throw this.failure;
      this.advanceFloor();
      const held = Math.max(this.extents.end, end) - this.floor;
      if (held <= this.limits.budgetBytes || data.length > this.limits.budgetBytes) break;
      // too far ahead of the slowest reader: wait for it (or for its claim to expire)
      await this.changed(Math.min(1000, this.limits.readerClaimMs));
    }
    this.touch();
    if (end <= this.floor) return; // everybody is already past it
    const skip = Math.max(0, this.floor - offset);
    await this.store.write(offset + skip, skip ? data.subarray(skip) : data);
    this.extents.add(offset + skip, end);
    this.bytesWritten += data.length;
    this.notify();
  }

  async read(readerId: number, offset: number, length: number): Promise<Buffer> {
    const claim = this.readers.get(readerId);
    if (!claim) throw new KangarooError('BAD_ARGUMENT', 'not a reader of this buffer');
    const waitStart = Date.now();
    for (;;) {
      claim.lastActive = Date.now();
      if (this.failure) throw this.failure;
      if (offset < this.floor) {
        throw new KangarooError('IO', `bytes from ${offset} of buffer ${this.name} were already consumed by every reader and freed`);
      }
      const avail = this.extents.contiguousFrom(offset);
      if (avail > 0) {
        const n = Math.min(length, avail);
        const data = await this.store.read(offset, n);
        claim.pos = Math.max(claim.pos, offset + n);
        this.bytesRead += n;
        this.touch();
        this.advanceFloor();
        return data;
      }
      if (this.writerState === 'closed') {
        if (offset >= this.extents.end) return Buffer.alloc(0); // end of file
        // a hole the writer never filled reads as zeros, as in a sparse file
        return Buffer.alloc(Math.min(length, this.nextDataAfter(offset) - offset));
      }
      const now = Date.now();
      if (this.writerState === 'lost' && now - this.lostAt >= this.limits.writerGraceMs) {
        this.failure = new KangarooError('IO', `the writer of buffer ${this.name} went away without closing ${Math.round((now - this.lostAt) / 1000)} s ago and did not come back`);
        this.log(`buffer ${this.name}: ${this.failure.message}; readers get EIO`);
        this.notify();
        throw this.failure;
      }
      if (this.writerState === 'none' && now - waitStart >= this.limits.noWriterWaitMs) {
        throw new KangarooError('TIMEOUT', `no writer opened buffer ${this.name} within ${Math.round(this.limits.noWriterWaitMs / 1000)} s`);
      }
      const until =
        this.writerState === 'lost'
          ? this.lostAt + this.limits.writerGraceMs - now
          : this.writerState === 'none'
            ? waitStart + this.limits.noWriterWaitMs - now
            : 60_000;
      await this.changed(until);
    }
  }

  private nextDataAfter(offset: number): number {
    return this.extents.nextStart(offset);
  }

  /** Finished and read, or untouched for the idle time: the registry drops it. */
  droppable(now = Date.now()): boolean {
    if (now - this.lastActivity > this.limits.idleMs) return true;
    return this.writerState === 'closed' && this.readers.size === 0 && this.everHadReader;
  }

  /** Fails everything still waiting (the buffer is being dropped). */
  fail(reason: KangarooError): void {
    this.failure = reason;
    this.notify();
  }

  describe() {
    return {
      name: this.name,
      writer: this.writerState,
      readers: this.readers.size,
      bytesWritten: this.bytesWritten,
      bytesRead: this.bytesRead,
      bytesHeld: this.held,
      memoryBytes: this.store.memoryBytes,
      diskBytes: this.store.diskBytes,
      peakMemoryBytes: this.store.peakMemoryBytes,
      ageSeconds: Math.round((Date.now() - this.createdAt) / 1000),
    };
  }

  async destroy(): Promise<void> {
    await this.store.destroy();
  }
}

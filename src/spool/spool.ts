import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { KangarooError } from '../errors.js';
import { OrderedOp, putIntact } from '../protocol/messages.js';
import { Journal, RecordLocation, RecoveryReport } from './journal.js';
import {
  Checkpoint,
  decodeCheckpoint,
  decodeDone,
  decodeOpRecord,
  encodeCheckpoint,
  encodeDone,
  encodeOpRecord,
  Origin,
  RecordKind,
} from './records.js';

/**
 * The durable spool of a relay: every ordered operation it accepted for another
 * host, in the order it accepted them, until the next hop has committed it.
 *
 * Promises:
 * - `accept` is synchronous: the operation is in the index (visible to get and
 *   stat) and queued for delivery the moment it returns.
 * - `commit` resolves once every operation accepted before it is fsync'd.
 * - Data leaves the disk only after `markDelivered` for every op in a segment.
 * - After a crash, `open` recovers every op whose record is intact and not
 *   marked delivered; a torn tail is dropped and corruption is reported.
 */

export interface SpooledOp {
  localSeq: number;
  op: OrderedOp;
  origin: Origin;
  loc: RecordLocation;
  dataOffset: number;
  dataLength: number;
  /** Data kept in memory (memory first, then disk); undefined once only on disk. */
  data: Buffer | undefined;
  /** CRC-32 of the kept `data`, when the relay learnt it on receipt: sending it needs no pass over it. */
  dataCrc?: number;
  file: FileState;
  inflight: boolean;
  /** When this relay took the op (the file's modification time as the spool sees it). */
  acceptedAt: number;
}

export interface BlockedReason {
  code: string;
  message: string;
  since: number;
}

export interface FileState {
  host: string;
  path: string;
  /** Undelivered ops touching this path (as source or target), by localSeq, in order. */
  ops: Map<number, SpooledOp>;
  pendingBytes: number;
  blocked: BlockedReason | undefined;
  waiters: { upTo: number; resolve: () => void; reject: (e: KangarooError) => void }[];
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  memoryBytes?: number;
  segmentBytes?: number;
}

export const DEFAULT_MAX_SPOOL_BYTES = 10 * 1024 ** 3;
/** Accepted bytes that may wait in memory for the journal's writer before writers are held. */
export const MAX_UNWRITTEN_BYTES = 32 * 1024 * 1024;

export class Spool extends EventEmitter {
  private files = new Map<string, FileState>();
  /** Per destination host: undelivered ops in accept order. */
  private queues = new Map<string, Map<number, SpooledOp>>();
  private liveBySegment = new Map<number, number>();
  private watermarks = new Map<string, number>();
  private nextSeq = 1;
  private memoryUsed = 0;
  private pendingDone: number[] = [];
  private opsBySeq = new Map<number, SpooledOp>();
  /** Delivered ops whose OP record is still on disk: where that record and its DONE record live. */
  private doneOnDisk = new Map<number, { opSeg: number; doneSeg: number }>();
  peakBytes = 0;
  recovery: RecoveryReport | undefined;
  private journal!: Journal;
  /** Set when writers were told to wait for the journal's writer (see hasRoom). */
  private waitingForDisk = false;

  private constructor(readonly options: Required<SpoolOptions>) {
    super();
  }

  static async open(options: SpoolOptions): Promise<Spool> {
    const maxBytes = options.maxBytes;
    const segmentBytes = options.segmentBytes ?? Math.max(256 * 1024, Math.min(64 * 1024 * 1024, Math.floor(maxBytes / 8)));
    const spool = new Spool({ memoryBytes: 64 * 1024 * 1024, segmentBytes, ...options });
    await fsp.mkdir(options.dir, { recursive: true });
    const { journal, records, report } = await Journal.open(path.join(options.dir, 'journal'), segmentBytes, () => [
      { kind: RecordKind.CHECKPOINT, payload: encodeCheckpoint(spool.checkpoint()) },
    ]);
    spool.journal = journal;
    spool.recovery = report;
    journal.onWritten = () => {
      if (!spool.waitingForDisk || journal.unwritten >= MAX_UNWRITTEN_BYTES) return;
      spool.waitingForDisk = false;
      spool.emit('space');
    };
    const done = new Map<number, number>();
    const recovered: { localSeq: number; origin: Origin; op: OrderedOp; loc: RecordLocation; dataOffset: number }[] = [];
    for (const rec of records) {
      try {
        if (rec.kind === RecordKind.OP) {
          const d = decodeOpRecord(rec.payload);
          recovered.push({ ...d, loc: rec.loc });
        } else if (rec.kind === RecordKind.DONE) {
          for (const s of decodeDone(rec.payload)) done.set(s, rec.loc.segment);
        } else if (rec.kind === RecordKind.CHECKPOINT) {
          const c = decodeCheckpoint(rec.payload);
          spool.nextSeq = Math.max(spool.nextSeq, c.nextSeq);
          for (const [id, seq] of Object.entries(c.watermarks)) spool.raiseWatermark(id, seq);
        }
      } catch (err) {
        report.corrupted.push({ segment: rec.loc.segment, offset: rec.loc.offset, skippedBytes: rec.loc.length });
      }
    }
    for (const r of recovered) {
      spool.nextSeq = Math.max(spool.nextSeq, r.localSeq + 1);
      if (r.origin.clientId) spool.raiseWatermark(r.origin.clientId, r.origin.seq);
      const doneSeg = done.get(r.localSeq);
      if (doneSeg !== undefined) {
        spool.doneOnDisk.set(r.localSeq, { opSeg: r.loc.segment, doneSeg });
        continue;
      }
      // Recovered put data stays on disk; it is read back when the mover needs it.
      const op = r.op.type === 'put' ? { ...r.op, data: Buffer.alloc(0) } : r.op;
      spool.index(r.localSeq, r.origin, op, r.loc, r.dataOffset, r.op.type === 'put' ? r.op.data.length : 0, undefined);
    }
    // The segment Journal.open started got its checkpoint before any record was replayed (nextSeq 1,
    // no watermarks). Start another one with the recovered state; the stale one is idle and goes.
    journal.rotate();
    await spool.deleteIdleSegments();
    spool.peakBytes = journal.bytes;
    return spool;
  }

  private checkpoint(): Checkpoint {
    return { nextSeq: this.nextSeq, watermarks: Object.fromEntries(this.watermarks) };
  }

  private raiseWatermark(clientId: string, seq: number): void {
    if ((this.watermarks.get(clientId) ?? 0) < seq) this.watermarks.set(clientId, seq);
  }

  /** The highest op seq accepted from a client: anything at or below it is a resend. */
  watermark(clientId: string): number {
    return this.watermarks.get(clientId) ?? 0;
  }

  get bytesUsed(): number {
    return this.journal.bytes;
  }

  /**
   * False when the spool is at its limit, or when more than MAX_UNWRITTEN_BYTES wait
   * for a disk slower than the writers (they would otherwise pile up in memory):
   * callers stop reading from writers until 'space'.
   */
  hasRoom(): boolean {
    if (this.journal.unwritten >= MAX_UNWRITTEN_BYTES) this.waitingForDisk = true;
    return this.journal.bytes < this.options.maxBytes && !this.waitingForDisk;
  }

  /** Takes an op into the spool. Returns undefined for a resend already held. */
  accept(op: OrderedOp, origin: Origin): SpooledOp | undefined {
    if (origin.clientId && origin.seq > 0) {
      if (origin.seq <= this.watermark(origin.clientId)) return undefined;
      this.raiseWatermark(origin.clientId, origin.seq);
    }
    const localSeq = this.nextSeq++;
    const enc = encodeOpRecord(localSeq, origin, op);
    // pooled data goes back to its pool once written, so it cannot stay in the memory tier
    const recycle = op.type === 'put' ? op.recycle : undefined;
    const loc = this.journal.append(RecordKind.OP, enc.payload, enc.crc, recycle);
    const dataLength = op.type === 'put' ? op.data.length : 0;
    let keep: Buffer | undefined;
    if (op.type === 'put' && !recycle && this.memoryUsed + dataLength <= this.options.memoryBytes) {
      keep = op.data;
      this.memoryUsed += dataLength;
    }
    // the data lives in the journal (and maybe `keep`); a dataCrc would describe data no longer here
    const stored = op.type === 'put' ? { ...op, data: Buffer.alloc(0), dataCrc: undefined, recycle: undefined } : op;
    const sop = this.index(localSeq, origin, stored, loc, enc.dataOffset, dataLength, keep);
    if (keep && op.type === 'put') sop.dataCrc = op.dataCrc;
    this.peakBytes = Math.max(this.peakBytes, this.journal.bytes);
    this.emit('ops', op.host);
    return sop;
  }

  private index(
    localSeq: number,
    origin: Origin,
    op: OrderedOp,
    loc: RecordLocation,
    dataOffset: number,
    dataLength: number,
    data: Buffer | undefined,
  ): SpooledOp {
    const file = this.fileState(op.host, op.path, true)!;
    const sop: SpooledOp = { localSeq, op, origin, loc, dataOffset, dataLength, data, file, inflight: false, acceptedAt: Date.now() };
    file.ops.set(localSeq, sop);
    file.pendingBytes += dataLength;
    if (op.type === 'rename') this.fileState(op.host, op.to, true)!.ops.set(localSeq, sop);
    let q = this.queues.get(op.host);
    if (!q) this.queues.set(op.host, (q = new Map()));
    q.set(localSeq, sop);
    this.opsBySeq.set(localSeq, sop);
    this.liveBySegment.set(loc.segment, (this.liveBySegment.get(loc.segment) ?? 0) + 1);
    return sop;
  }

  fileState(host: string, p: string, create = false): FileState | undefined {
    const key = `${host}\0${p}`;
    let f = this.files.get(key);
    if (!f && create) {
      f = { host, path: p, ops: new Map(), pendingBytes: 0, blocked: undefined, waiters: [] };
      this.files.set(key, f);
    }
    return f;
  }

  /** Every file with undelivered ops or a blocked delivery. */
  allFiles(): FileState[] {
    return [...this.files.values()];
  }

  hosts(): string[] {
    return [...this.queues.keys()].filter((h) => (this.queues.get(h)?.size ?? 0) > 0);
  }

  /** Undelivered ops for a destination host, in accept order. */
  queue(host: string): Map<number, SpooledOp> {
    return this.queues.get(host) ?? new Map();
  }

  /** A put's data: from memory when still there, else read back from the journal. */
  async data(sop: SpooledOp): Promise<Buffer> {
    if (sop.dataLength === 0) return Buffer.alloc(0);
    if (sop.data) return sop.data;
    return this.journal.read(sop.loc, sop.dataOffset, sop.dataLength);
  }

  /** The op as it goes on the wire, with its data loaded (and the data's CRC when known). */
  async materialize(sop: SpooledOp): Promise<OrderedOp> {
    if (sop.op.type !== 'put') return sop.op;
    if (sop.data) return { ...sop.op, data: sop.data, dataCrc: sop.dataCrc };
    return { ...sop.op, data: await this.data(sop) };
  }

  /** Resolves once every op accepted so far is fsync'd. */
  async commit(): Promise<void> {
    await this.journal.sync();
  }

  /** True while the op is spooled and not yet acknowledged by the next hop. */
  isPending(sop: SpooledOp): boolean {
    return this.opsBySeq.get(sop.localSeq) === sop;
  }

  /** Records that the next hop committed these ops; frees their space. */
  markDelivered(sops: SpooledOp[]): void {
    for (const sop of sops) {
      if (!this.opsBySeq.delete(sop.localSeq)) continue;
      sop.inflight = false;
      this.removeFromFile(sop, sop.file);
      if (sop.op.type === 'rename') {
        const target = this.fileState(sop.op.host, sop.op.to);
        if (target) this.removeFromFile(sop, target);
      }
      this.queues.get(sop.op.host)?.delete(sop.localSeq);
      if (sop.data) this.memoryUsed -= sop.dataLength;
      sop.data = undefined;
      sop.dataCrc = undefined;
      const live = (this.liveBySegment.get(sop.loc.segment) ?? 1) - 1;
      this.liveBySegment.set(sop.loc.segment, live);
      this.pendingDone.push(sop.localSeq);
      this.doneOnDisk.set(sop.localSeq, { opSeg: sop.loc.segment, doneSeg: -1 });
    }
    if (this.pendingDone.length > 0) {
      const loc = this.journal.append(RecordKind.DONE, encodeDone(this.pendingDone));
      for (const s of this.pendingDone) this.doneOnDisk.get(s)!.doneSeg = loc.segment;
      this.pendingDone = [];
    }
    // Everything in the current segment delivered: start a fresh one so this one's space comes back.
    const cur = this.journal.currentSegment;
    if ((this.liveBySegment.get(cur) ?? 0) === 0 && this.journal.currentBytes > 64 * 1024) this.journal.rotate();
    // a failure here (a spool write or fsync failing) is the journal's sticky error now: the
    // next commit reports it; the segments simply stay
    void this.deleteIdleSegments().then(
      () => this.emit('space'),
      () => undefined,
    );
  }

  private removeFromFile(sop: SpooledOp, file: FileState): void {
    if (!file.ops.delete(sop.localSeq)) return;
    if (file.path === sop.op.path) file.pendingBytes -= sop.dataLength;
    if (file.waiters.length > 0) {
      // ops are kept in ascending seq order, so the first one is the oldest still pending
      const oldest = file.ops.keys().next().value as number | undefined;
      file.waiters = file.waiters.filter((w) => {
        if (oldest !== undefined && oldest <= w.upTo) return true;
        w.resolve();
        return false;
      });
    }
    if (file.ops.size === 0 && !file.blocked) this.files.delete(`${file.host}\0${file.path}`);
  }

  /**
   * Resolves once every op for this file accepted so far is delivered to the
   * next hop; rejects at once if delivery of the file is blocked.
   */
  waitDelivered(host: string, p: string): Promise<void> {
    const file = this.fileState(host, p);
    if (!file || file.ops.size === 0) {
      if (file?.blocked) return Promise.reject(blockedError(file));
      return Promise.resolve();
    }
    if (file.blocked) return Promise.reject(blockedError(file));
    const upTo = this.nextSeq - 1;
    return new Promise((resolve, reject) => file.waiters.push({ upTo, resolve, reject }));
  }

  /** Stops delivery of a file after a permanent error; its data stays spooled. */
  block(file: FileState, reason: { code: string; message: string }): void {
    file.blocked = { ...reason, since: Date.now() };
    const err = blockedError(file);
    for (const w of file.waiters.splice(0)) w.reject(err);
    this.emit('blocked', file);
  }

  /**
   * Re-queues a blocked file after the user fixed the cause. Its ops are written
   * again at the tail with new sequence numbers (so a receiver's resend filter
   * does not mistake them for duplicates) and the old records are retired.
   */
  /** Resolves once the files are re-queued (a push right after it sees them pending, not blocked). */
  async retry(host: string, p: string | undefined): Promise<number> {
    let count = 0;
    const jobs: Promise<void>[] = [];
    for (const file of this.allFiles()) {
      if (!file.blocked || file.host !== host || (p !== undefined && file.path !== p)) continue;
      count++;
      jobs.push(this.requeue(file));
    }
    await Promise.all(jobs);
    return count;
  }

  /**
   * Writes a blocked file's ops again at the tail, then unblocks it (not before, or the
   * mover could take the old records meanwhile). A spooled put whose data no longer
   * matches its checksum is dropped, not re-queued: the writer has written it again.
   */
  private async requeue(file: FileState): Promise<void> {
    const taken = new Set<SpooledOp>();
    const fresh: { op: OrderedOp; origin: Origin }[] = [];
    for (;;) {
      const more = [...file.ops.values()].filter((s) => s.op.path === file.path && !taken.has(s));
      if (more.length === 0) break;
      for (const sop of more) {
        taken.add(sop);
        const op = await this.materialize(sop);
        if (op.type === 'put' && !putIntact(op)) continue;
        fresh.push({ op, origin: { clientId: '', seq: 0 } });
      }
    }
    this.markDelivered([...taken]);
    file.blocked = undefined;
    if (file.ops.size === 0 && fresh.length === 0) this.files.delete(`${file.host}\0${file.path}`);
    for (const f of fresh) this.accept(f.op, f.origin);
  }

  private async deleteIdleSegments(): Promise<void> {
    const doomed = new Set(
      this.journal.segments().filter((seg) => seg !== this.journal.currentSegment && (this.liveBySegment.get(seg) ?? 0) === 0),
    );
    if (doomed.size === 0) return;
    // DONE records in doomed segments that retire ops in surviving segments must be written again first.
    const carry: number[] = [];
    for (const [seq, d] of this.doneOnDisk) {
      if (doomed.has(d.opSeg)) this.doneOnDisk.delete(seq);
      else if (doomed.has(d.doneSeg)) carry.push(seq);
    }
    if (carry.length > 0) {
      const loc = this.journal.append(RecordKind.DONE, encodeDone(carry));
      for (const s of carry) this.doneOnDisk.get(s)!.doneSeg = loc.segment;
      await this.journal.sync();
    }
    for (const seg of doomed) {
      this.liveBySegment.delete(seg);
      await this.journal.deleteSegment(seg);
    }
  }

  get memoryBytes(): number {
    return this.memoryUsed;
  }

  get opCount(): number {
    return this.opsBySeq.size;
  }

  get unwrittenBytes(): number {
    return this.journal.unwritten;
  }

  async close(): Promise<void> {
    await this.journal.close();
  }
}

export function blockedError(file: FileState): KangarooError {
  const b = file.blocked!;
  return new KangarooError('DELIVERY_BLOCKED', `delivery of ${file.host}${file.path} is stopped: ${b.code}: ${b.message} (fix the cause, then run: kangaroo retry kangaroo://${file.host}${file.path})`);
}

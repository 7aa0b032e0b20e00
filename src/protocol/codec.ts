import { KangarooError } from '../errors.js';
import { COMBINE_MIN_BYTES, crc32, crc32Combine } from '../util/crc32.js';

/**
 * Primitive field encoding shared by every message and by spool records.
 * Integers are big-endian; u64 values are JavaScript numbers (safe up to 2^53,
 * far beyond any file offset we handle); strings are u16 length + UTF-8; blobs
 * are u32 length + bytes.
 */
export class Writer {
  private parts: Buffer[] = [];
  /** CRC-32 of some parts (by index), given by whoever wrote them. */
  private knownCrcs = new Map<number, number>();
  private current: Buffer;
  private pos = 0;
  private total = 0;

  constructor(initial = 256) {
    this.current = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.current.length) return;
    this.flushCurrent();
    this.current = Buffer.allocUnsafe(Math.max(n, 256));
  }

  private flushCurrent(): void {
    if (this.pos > 0) this.parts.push(this.current.subarray(0, this.pos));
    this.current = Buffer.allocUnsafe(0);
    this.pos = 0;
  }

  u8(v: number): this {
    this.ensure(1);
    this.current.writeUInt8(v, this.pos);
    this.pos += 1;
    this.total += 1;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.current.writeUInt16BE(v, this.pos);
    this.pos += 2;
    this.total += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.current.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    this.total += 4;
    return this;
  }

  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new KangarooError('BAD_ARGUMENT', `not a valid unsigned integer: ${v}`);
    this.ensure(8);
    this.current.writeBigUInt64BE(BigInt(v), this.pos);
    this.pos += 8;
    this.total += 8;
    return this;
  }

  str(s: string): this {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length > 0xffff) throw new KangarooError('BAD_ARGUMENT', 'string longer than 65535 bytes');
    this.u16(bytes.length);
    this.raw(bytes);
    return this;
  }

  /**
   * u32 length, then the bytes, kept by reference (no copy) for large payloads.
   * `crc`, when the caller already knows the CRC-32 of `data`, spares checksum() a pass over it.
   */
  blob(data: Uint8Array, crc?: number): this {
    this.u32(data.length);
    this.raw(data, crc);
    return this;
  }

  raw(data: Uint8Array, crc?: number): this {
    if (data.length <= 64) {
      this.ensure(data.length);
      this.current.set(data, this.pos);
      this.pos += data.length;
    } else {
      this.flushCurrent();
      this.parts.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length));
      if (crc !== undefined && data.length >= COMBINE_MIN_BYTES) this.knownCrcs.set(this.parts.length - 1, crc);
    }
    this.total += data.length;
    return this;
  }

  /** Appends what `other` holds (large parts by reference, with the CRCs known for them). */
  append(other: Writer): this {
    other.chunks().forEach((part, i) => this.raw(part, other.knownCrcs.get(i)));
    return this;
  }

  /** CRC-32 of the encoded bytes, continuing from `seed`; parts whose CRC is known are not read again. */
  checksum(seed = 0): number {
    let crc = seed;
    this.chunks().forEach((part, i) => {
      const known = this.knownCrcs.get(i);
      crc = known === undefined ? crc32(part, crc) : crc32Combine(crc, known, part.length);
    });
    return crc >>> 0;
  }

  get length(): number {
    return this.total;
  }

  /** The encoded bytes as a list of buffers (large blobs are not copied). */
  chunks(): Buffer[] {
    this.flushCurrent();
    return this.parts;
  }

  toBuffer(): Buffer {
    const chunks = this.chunks();
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.total);
  }
}

/** Reads fields from one complete message; any overrun is a BAD_FRAME error, never a crash. */
export class Reader {
  private pos: number;

  constructor(
    private readonly buf: Buffer,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new KangarooError('BAD_FRAME', `truncated message: ${what} runs past the end`);
  }

  u8(): number {
    this.need(1, 'u8');
    return this.buf.readUInt8(this.pos++);
  }

  u16(): number {
    this.need(2, 'u16');
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4, 'u32');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8, 'u64');
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new KangarooError('BAD_FRAME', 'integer field out of range');
    return Number(v);
  }

  str(): string {
    const n = this.u16();
    this.need(n, 'string');
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  /** A view into the frame (no copy); callers that keep it past the frame must copy. */
  blob(): Buffer {
    const n = this.u32();
    this.need(n, 'blob');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws when bytes are left over: a message must be exactly its fields. */
  done(what: string): void {
    if (this.pos !== this.end) throw new KangarooError('BAD_FRAME', `${this.end - this.pos} unexpected trailing bytes in ${what}`);
  }
}

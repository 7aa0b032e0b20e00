import { KangarooError } from '../errors.js';
import { COMBINE_MIN_BYTES, crc32, crc32Combine } from '../util/crc32.js';
import { Writer } from './codec.js';
import { decodeBody, encodeBody, Message, messageTypeOf, OPCODES, PutOp } from './messages.js';

/**
 * Framing on the wire:
 *
 *   u32 length   bytes that follow this field (crc + opcode + id + body)
 *   u32 crc32    of opcode, id and body: a flipped byte in transit is caught here
 *   u8  opcode   see OPCODES
 *   u32 id       request id; a reply carries the id of its request
 *   ...  body    see messages.ts
 *
 * A frame longer than the receiver's maximum is refused before it is buffered.
 */

export const FRAME_HEADER_BYTES = 13;
export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024 + 4096;

export interface Frame {
  id: number;
  msg: Message;
}

/** Encodes one frame as a list of buffers (large payloads are not copied); write them in order. */
export function encodeFrame(id: number, msg: Message): Buffer[] {
  const body = new Writer();
  encodeBody(body, msg);
  const chunks = body.chunks();
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(9 + body.length, 0);
  header.writeUInt8(OPCODES[msg.type], 8);
  header.writeUInt32BE(id >>> 0, 9);
  header.writeUInt32BE(body.checksum(crc32(header.subarray(8, 13))), 4);
  return [header, ...chunks];
}

export function encodeFrameBuffer(id: number, msg: Message): Buffer {
  return Buffer.concat(encodeFrame(id, msg));
}

/**
 * A byte-level state machine: feed it whatever the socket delivers, in chunks of
 * any size; it calls `onFrame` for each complete frame, in order. The first defect
 * (oversized, bad checksum, unknown opcode, malformed body) throws a KangarooError
 * and the decoder refuses further input: the caller reports it and closes.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: KangarooError | undefined;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    private readonly maxFrame = DEFAULT_MAX_FRAME,
  ) {}

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    try {
      this.drain();
    } catch (err) {
      this.failed = KangarooError.from(err);
      this.chunks = [];
      this.buffered = 0;
      throw this.failed;
    }
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    return this.take(4, false).readUInt32BE(0);
  }

  /** Returns the first n buffered bytes as one buffer, consuming them if `consume`. */
  private take(n: number, consume: boolean): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (consume) {
        if (first.length === n) this.chunks.shift();
        else this.chunks[0] = first.subarray(n);
        this.buffered -= n;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const c = this.chunks[i]!;
      const used = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, used);
      filled += used;
      if (consume && used === c.length) {
        this.chunks.shift();
      } else if (consume) {
        this.chunks[i] = c.subarray(used);
        i++;
      } else {
        i++;
      }
    }
    if (consume) this.buffered -= n;
    return out;
  }

  private drain(): void {
    while (this.buffered >= 4) {
      const length = this.peekLength();
      if (length < 9) throw new KangarooError('BAD_FRAME', `frame length ${length} is shorter than a frame header`);
      if (length + 4 > this.maxFrame) {
        throw new KangarooError('FRAME_TOO_LARGE', `frame of ${length + 4} bytes exceeds the limit of ${this.maxFrame}`);
      }
      if (this.buffered < length + 4) return;
      const frame = this.take(length + 4, true);
      this.onFrame(decodeFrame(frame));
    }
  }
}

/** Decodes exactly one complete frame (length prefix included). */
export function decodeFrame(frame: Buffer): Frame {
  if (frame.length < FRAME_HEADER_BYTES) throw new KangarooError('BAD_FRAME', 'frame shorter than its header');
  const length = frame.readUInt32BE(0);
  if (length + 4 !== frame.length) throw new KangarooError('BAD_FRAME', 'frame length field does not match its size');
  const expected = frame.readUInt32BE(4);
  const checksumError = () => new KangarooError('BAD_FRAME', 'frame checksum mismatch (corrupted in transit)');
  const opcode = frame.readUInt8(8);
  const id = frame.readUInt32BE(9);
  const type = messageTypeOf(opcode);
  let msg: Message;
  try {
    if (!type) throw new KangarooError('UNKNOWN_OP', `unknown opcode ${opcode}`);
    msg = decodeBody(type, frame, FRAME_HEADER_BYTES);
  } catch (err) {
    // a damaged frame is reported as damaged, not as whatever its damage looks like
    if (crc32(frame.subarray(8)) !== expected) throw checksumError();
    throw err;
  }
  if (checksumWithPuts(frame, msg) !== expected) throw checksumError();
  return { id, msg };
}

/**
 * The frame's CRC in one pass: a large put's data is checksummed on its own and
 * combined into the frame's CRC, so the same pass gives the put its dataCrc (which
 * the relay compares with the put's sum, and reuses for the journal record).
 */
function checksumWithPuts(frame: Buffer, msg: Message): number {
  const puts = (msg.type === 'put' ? [msg] : msg.type === 'bulk' ? msg.ops : []).filter(
    (op): op is PutOp =>
      op.type === 'put' && op.data.length >= COMBINE_MIN_BYTES && op.data.buffer === frame.buffer,
  );
  let crc = 0;
  let at = 8;
  for (const put of puts) {
    const start = put.data.byteOffset - frame.byteOffset;
    crc = crc32(frame.subarray(at, start), crc);
    put.dataCrc = crc32(put.data);
    crc = crc32Combine(crc, put.dataCrc, put.data.length);
    at = start + put.data.length;
  }
  return crc32(frame.subarray(at), crc);
}

import { KangarooError } from '../errors.js';
import { COMBINE_MIN_BYTES, crc32, crc32Combine } from '../util/crc32.js';
import { fitsPutBuffer, takePutBuffer } from '../util/put-buffers.js';
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

/** Frames up to this size are gathered in a decoder's scratch buffer and copied out; larger ones are read in place. */
const SCRATCH_BYTES = 16 * 1024;

/**
 * A byte-level state machine from bytes to frames; it calls `onFrame` for each
 * complete frame, in order. The first defect (oversized, bad checksum, unknown
 * opcode, malformed body) throws a KangarooError and the decoder refuses further
 * input: the caller reports it and closes.
 *
 * Bytes come in one of two ways. A socket in user-buffer mode reads straight into
 * `readBuffer()` and reports `received(n)`: small frames land in a scratch buffer
 * and are copied out, and a larger frame, once its length is known, gets a buffer
 * of its own (a put buffer for a put of up to 1 MiB, see put-buffers.ts) that the
 * socket then reads into up to the frame's last byte, so its data is never copied
 * in user space. Anything else `push`es chunks of any size, which are copied the
 * same way. Before, each 64 KiB chunk Node read was gathered into a fresh frame
 * buffer: a relay taking puts from a mount spent a quarter of its CPU collecting
 * the garbage and a tenth copying (perf, dd through a mount on a separate first hop).
 */
export class FrameDecoder {
  private scratch: Buffer | undefined;
  /** Unconsumed bytes in scratch: [start, end). */
  private start = 0;
  private end = 0;
  /** The frame being read in place: its buffer, how much of it has arrived, and its release when pooled. */
  private large: { buffer: Buffer; filled: number; recycle?: () => void } | undefined;
  private failed: KangarooError | undefined;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    private readonly maxFrame = DEFAULT_MAX_FRAME,
  ) {}

  /** Bytes received but not yet part of a complete frame. */
  get pending(): number {
    return (this.large?.filled ?? 0) + this.end - this.start;
  }

  /** Where the next bytes from the peer go (never empty): read at most its length into it, then call received. */
  readBuffer(): Buffer {
    if (this.large) return this.large.buffer.subarray(this.large.filled);
    this.scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
    return this.scratch.subarray(this.end);
  }

  /** `n` bytes were read into the buffer readBuffer() gave last. */
  received(n: number): void {
    if (this.failed) throw this.failed;
    try {
      if (this.large) {
        this.large.filled += n;
        if (this.large.filled === this.large.buffer.length) this.finishLarge();
      } else {
        this.end += n;
        this.drainScratch();
      }
    } catch (err) {
      this.failed = KangarooError.from(err);
      this.large = undefined;
      this.start = this.end = 0;
      throw this.failed;
    }
  }

  /** Feeds a chunk of any size (a socket's 'data', a test). */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      // copy stops at the end of the buffer given (the frame's last byte, or the scratch buffer's)
      const n = chunk.copy(this.readBuffer(), 0, at);
      at += n;
      this.received(n);
    }
    if (this.failed) throw this.failed;
  }

  private drainScratch(): void {
    const scratch = this.scratch!;
    while (this.end - this.start >= 4) {
      const length = scratch.readUInt32BE(this.start);
      if (length < 9) throw new KangarooError('BAD_FRAME', `frame length ${length} is shorter than a frame header`);
      if (length + 4 > this.maxFrame) {
        throw new KangarooError('FRAME_TOO_LARGE', `frame of ${length + 4} bytes exceeds the limit of ${this.maxFrame}`);
      }
      const total = length + 4;
      const have = this.end - this.start;
      if (total <= SCRATCH_BYTES) {
        if (have < total) break;
        // copied out: the scratch buffer takes the next bytes, the frame's message may keep its data
        const frame = Buffer.from(scratch.subarray(this.start, this.start + total));
        this.start += total;
        this.onFrame(decodeFrame(frame));
        continue;
      }
      if (have < FRAME_HEADER_BYTES) break;
      const pooled = fitsPutBuffer(total) && scratch[this.start + 8] === OPCODES.put ? takePutBuffer() : undefined;
      // the length was checked against maxFrame, the largest frame this peer may send
      const buffer = pooled ? pooled.buffer.subarray(0, total) : Buffer.allocUnsafe(total);
      scratch.copy(buffer, 0, this.start, this.end);
      this.large = { buffer, filled: have, recycle: pooled?.recycle };
      this.start = this.end = 0;
      return;
    }
    // what is left is the start of a frame that fits: move it to the front, to make room for the rest
    if (this.start > 0) {
      scratch.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
  }

  private finishLarge(): void {
    const { buffer, recycle } = this.large!;
    this.large = undefined;
    const frame = decodeFrame(buffer);
    if (recycle && frame.msg.type === 'put' && frame.msg.data.buffer === buffer.buffer) frame.msg.recycle = recycle;
    this.onFrame(frame);
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

import { Reader, Writer } from '../protocol/codec.js';
import { decodeBody, encodeBody, messageTypeOf, OPCODES, OrderedOp, ORDERED_TYPES } from '../protocol/messages.js';
import { KangarooError } from '../errors.js';
import { COMBINE_MIN_BYTES } from '../util/crc32.js';

/**
 * The kinds of journal record a spool writes, and their payloads.
 *
 * OP          u64 localSeq, str clientId, u64 clientSeq, u8 opcode, then the op body
 *             exactly as on the wire (a put's data is last, so it can be read back in place)
 * DONE        u32 count, then count u64 localSeqs: delivered and committed at the next hop
 * CHECKPOINT  JSON: what a reader needs that older, deleted segments held
 */
export const RecordKind = { OP: 1, DONE: 2, CHECKPOINT: 3 } as const;

export interface Origin {
  clientId: string;
  seq: number;
}

export interface Checkpoint {
  nextSeq: number;
  watermarks: Record<string, number>;
}

export interface EncodedOp {
  payload: Buffer[];
  /** Offset within the payload where a put's data starts (payload length for other ops). */
  dataOffset: number;
  /** CRC-32 of the payload, for a large put whose data's CRC is known (its data is not read again). */
  crc?: number;
}

export function encodeOpRecord(localSeq: number, origin: Origin, op: OrderedOp): EncodedOp {
  const w = new Writer();
  w.u64(localSeq).str(origin.clientId).u64(origin.seq).u8(OPCODES[op.type]);
  encodeBody(w, op);
  const payload = w.chunks();
  const dataLength = op.type === 'put' ? op.data.length : 0;
  const crc = op.type === 'put' && op.dataCrc !== undefined && dataLength >= COMBINE_MIN_BYTES ? w.checksum() : undefined;
  return { payload, dataOffset: w.length - dataLength, crc };
}

export function decodeOpRecord(payload: Buffer): { localSeq: number; origin: Origin; op: OrderedOp; dataOffset: number } {
  const r = new Reader(payload);
  const localSeq = r.u64();
  const origin = { clientId: r.str(), seq: r.u64() };
  const opcode = r.u8();
  const type = messageTypeOf(opcode);
  if (!type || !ORDERED_TYPES.has(type)) throw new KangarooError('BAD_FRAME', `spool record has opcode ${opcode}`);
  const bodyStart = payload.length - r.remaining;
  const op = decodeBody(type, payload, bodyStart) as OrderedOp;
  const dataOffset = op.type === 'put' ? payload.length - op.data.length : payload.length;
  return { localSeq, origin, op, dataOffset };
}

export function encodeDone(seqs: number[]): Buffer[] {
  const w = new Writer(4 + seqs.length * 8);
  w.u32(seqs.length);
  for (const s of seqs) w.u64(s);
  return w.chunks();
}

export function decodeDone(payload: Buffer): number[] {
  const r = new Reader(payload);
  const n = r.u32();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.u64());
  r.done('done record');
  return out;
}

export function encodeCheckpoint(c: Checkpoint): Buffer[] {
  return [Buffer.from(JSON.stringify(c), 'utf8')];
}

export function decodeCheckpoint(payload: Buffer): Checkpoint {
  const c = JSON.parse(payload.toString('utf8')) as Checkpoint;
  if (typeof c.nextSeq !== 'number' || typeof c.watermarks !== 'object') {
    throw new KangarooError('BAD_FRAME', 'malformed spool checkpoint');
  }
  return c;
}

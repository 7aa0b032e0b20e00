import { KangarooError } from '../errors.js';
import { crc32 } from '../util/crc32.js';
import { Reader, Writer } from './codec.js';

/**
 * Every message of the wire protocol, and the encoding of its body. Ordered
 * operations (put and the metadata operations) double as spool records, so one
 * encoding serves the wire and the journal.
 *
 * Ordered operations carry `seq`: the sender's sequence number, increasing per
 * client id. A receiver skips an operation whose seq is at or below what it
 * already holds from that client, so a sender may resend after a lost
 * acknowledgement without applying anything twice. seq 0 means "no dedup".
 */

export type FileKind = 'file' | 'dir' | 'other';

export interface FileInfo {
  kind: FileKind;
  size: number;
  mtimeMs: number;
  mode: number;
}

export interface DirEntry extends FileInfo {
  name: string;
}

interface Target {
  seq: number;
  host: string;
  path: string;
}

export type OrderedOp =
  /**
   * sum: CRC-32 of data, computed where the data entered the system and checked
   * where it is applied (end-to-end integrity); a sender may leave it out and the
   * encoder computes it. Decoded puts always carry it.
   *
   * dataCrc (never on the wire): the CRC-32 of data as this process computed it,
   * when it did (the frame decoder does for large puts). Comparing it with sum checks
   * the data without another pass, and encoders reuse it for frame and record CRCs.
   *
   * recycle (never on the wire): the data's buffer is pooled; whoever takes the data
   * over calls it once nothing refers to the data any more. Not calling it is always
   * safe (the buffer is then simply collected); calling it early is not.
   */
  | (Target & { type: 'put'; offset: number; sum?: number; data: Buffer; dataCrc?: number; recycle?: () => void })
  | (Target & { type: 'truncate'; size: number })
  | (Target & { type: 'mkdir'; mode: number })
  | (Target & { type: 'unlink' })
  | (Target & { type: 'rmdir' })
  | (Target & { type: 'rename'; to: string })
  /** mode NO_MODE and mtimeMs 0 mean "leave as is". */
  | (Target & { type: 'setattr'; mode: number; mtimeMs: number });

export const NO_MODE = 0xffffffff;

export type PutOp = Extract<OrderedOp, { type: 'put' }>;

/** Whether a put's data is the data its sum was taken of (a put without a sum has nothing to check). */
export function putIntact(op: PutOp): boolean {
  return op.sum === undefined || (op.dataCrc ?? crc32(op.data)) === op.sum;
}

export type Request =
  | OrderedOp
  | { type: 'hello'; version: number; clientId: string }
  | { type: 'bulk'; ops: OrderedOp[] }
  | { type: 'get'; host: string; path: string; offset: number; length: number }
  | { type: 'commit' }
  | { type: 'push'; host: string; path: string }
  | { type: 'stat'; host: string; path: string }
  | { type: 'list'; host: string; path: string }
  | { type: 'status' }
  | { type: 'retry'; host: string; path: string }
  // grid buffers (pipe mode)
  | { type: 'bufOpen'; host: string; name: string; role: 'read' | 'write' }
  | { type: 'bufWrite'; handle: number; offset: number; data: Buffer }
  | { type: 'bufRead'; handle: number; offset: number; length: number }
  | { type: 'bufClose'; handle: number }
  | { type: 'bufStat'; host: string; name: string }
  | { type: 'log'; limit: number }
  | { type: 'auth'; response: Buffer };

export interface BulkError {
  index: number;
  code: string;
  message: string;
}

export type Reply =
  | { type: 'ok' }
  | { type: 'error'; code: string; message: string }
  | { type: 'data'; data: Buffer }
  | { type: 'statReply'; info: FileInfo }
  | { type: 'listReply'; entries: DirEntry[] }
  | { type: 'bulkReply'; errors: BulkError[] }
  | { type: 'json'; value: unknown }
  /** challenge: empty when the relay needs no secret, else answer with an auth frame. */
  | { type: 'helloReply'; name: string; version: number; maxFrame: number; challenge: Buffer }
  | { type: 'bufOpened'; handle: number; size: number };

export type Message = Request | Reply;
export type MessageType = Message['type'];

export const PROTOCOL_VERSION = 1;

/** Opcodes on the wire. Requests are below 64, replies 64 and up. Never renumber. */
export const OPCODES: Record<MessageType, number> = {
  hello: 1,
  get: 2,
  put: 3,
  commit: 4,
  push: 5,
  stat: 6,
  list: 7,
  truncate: 8,
  mkdir: 9,
  unlink: 10,
  rmdir: 11,
  rename: 12,
  bulk: 13,
  status: 14,
  retry: 15,
  setattr: 16,
  bufOpen: 17,
  bufWrite: 18,
  bufRead: 19,
  bufClose: 20,
  bufStat: 21,
  log: 22,
  auth: 23,
  ok: 64,
  error: 65,
  data: 66,
  statReply: 67,
  listReply: 68,
  bulkReply: 69,
  json: 70,
  helloReply: 71,
  bufOpened: 72,
};

const TYPE_BY_OPCODE = new Map<number, MessageType>(
  Object.entries(OPCODES).map(([type, code]) => [code, type as MessageType]),
);

export function messageTypeOf(opcode: number): MessageType | undefined {
  return TYPE_BY_OPCODE.get(opcode);
}

export const ORDERED_TYPES = new Set<MessageType>(['put', 'truncate', 'mkdir', 'unlink', 'rmdir', 'rename', 'setattr']);

export function isOrderedOp(m: Message): m is OrderedOp {
  return ORDERED_TYPES.has(m.type);
}

export function isReply(m: Message): m is Reply {
  return OPCODES[m.type] >= 64;
}

const KIND_CODES: Record<FileKind, number> = { file: 1, dir: 2, other: 3 };
const KIND_BY_CODE: Record<number, FileKind> = { 1: 'file', 2: 'dir', 3: 'other' };

function writeInfo(w: Writer, info: FileInfo): void {
  // rounded, not truncated: a time set in milliseconds comes back from the disk a few
  // hundred nanoseconds short (utimes takes seconds as a double), and must read the same
  w.u8(KIND_CODES[info.kind]).u64(info.size).u64(Math.max(0, Math.round(info.mtimeMs))).u32(info.mode);
}

function readInfo(r: Reader): FileInfo {
  const code = r.u8();
  const kind = KIND_BY_CODE[code];
  if (!kind) throw new KangarooError('BAD_FRAME', `unknown file kind ${code}`);
  return { kind, size: r.u64(), mtimeMs: r.u64(), mode: r.u32() };
}

/** Appends the body of `m` (not its opcode) to `w`. */
export function encodeBody(w: Writer, m: Message): void {
  switch (m.type) {
    case 'put': {
      // data entering the system here: its sum is computed once and serves as the data's known CRC
      const crc = m.dataCrc ?? (m.sum === undefined ? crc32(m.data) : undefined);
      w.u64(m.seq).str(m.host).str(m.path).u64(m.offset).u32(m.sum ?? crc!).blob(m.data, crc);
      return;
    }
    case 'truncate':
      w.u64(m.seq).str(m.host).str(m.path).u64(m.size);
      return;
    case 'mkdir':
      w.u64(m.seq).str(m.host).str(m.path).u32(m.mode);
      return;
    case 'unlink':
    case 'rmdir':
      w.u64(m.seq).str(m.host).str(m.path);
      return;
    case 'rename':
      w.u64(m.seq).str(m.host).str(m.path).str(m.to);
      return;
    case 'setattr':
      w.u64(m.seq).str(m.host).str(m.path).u32(m.mode).u64(m.mtimeMs);
      return;
    case 'hello':
      w.u16(m.version).str(m.clientId);
      return;
    case 'bulk':
      w.u32(m.ops.length);
      for (const op of m.ops) {
        const inner = new Writer();
        encodeBody(inner, op);
        w.u8(OPCODES[op.type]).u32(inner.length).append(inner);
      }
      return;
    case 'get':
      w.str(m.host).str(m.path).u64(m.offset).u32(m.length);
      return;
    case 'bufOpen':
      w.str(m.host).str(m.name).u8(m.role === 'write' ? 2 : 1);
      return;
    case 'bufWrite':
      w.u32(m.handle).u64(m.offset).blob(m.data);
      return;
    case 'bufRead':
      w.u32(m.handle).u64(m.offset).u32(m.length);
      return;
    case 'bufClose':
      w.u32(m.handle);
      return;
    case 'bufStat':
      w.str(m.host).str(m.name);
      return;
    case 'log':
      w.u32(m.limit);
      return;
    case 'auth':
      w.blob(m.response);
      return;
    case 'bufOpened':
      w.u32(m.handle).u64(m.size);
      return;
    case 'push':
    case 'stat':
    case 'list':
    case 'retry':
      w.str(m.host).str(m.path);
      return;
    case 'commit':
    case 'status':
    case 'ok':
      return;
    case 'error':
      w.str(m.code).str(m.message.slice(0, 4000));
      return;
    case 'data':
      w.blob(m.data);
      return;
    case 'statReply':
      writeInfo(w, m.info);
      return;
    case 'listReply':
      w.u32(m.entries.length);
      for (const e of m.entries) {
        w.str(e.name);
        writeInfo(w, e);
      }
      return;
    case 'bulkReply':
      w.u32(m.errors.length);
      for (const e of m.errors) w.u32(e.index).str(e.code).str(e.message.slice(0, 4000));
      return;
    case 'json':
      w.blob(Buffer.from(JSON.stringify(m.value), 'utf8'));
      return;
    case 'helloReply':
      w.str(m.name).u16(m.version).u32(m.maxFrame).blob(m.challenge);
      return;
  }
}

/** Decodes the body of a message of `type` spanning buf[start, end). Throws BAD_FRAME on any defect. */
export function decodeBody(type: MessageType, buf: Buffer, start = 0, end = buf.length): Message {
  const r = new Reader(buf, start, end);
  const m = readBody(type, r);
  r.done(type);
  return m;
}

function readBody(type: MessageType, r: Reader): Message {
  switch (type) {
    case 'put':
      return { type, seq: r.u64(), host: r.str(), path: r.str(), offset: r.u64(), sum: r.u32(), data: r.blob() };
    case 'truncate':
      return { type, seq: r.u64(), host: r.str(), path: r.str(), size: r.u64() };
    case 'mkdir':
      return { type, seq: r.u64(), host: r.str(), path: r.str(), mode: r.u32() };
    case 'unlink':
    case 'rmdir':
      return { type, seq: r.u64(), host: r.str(), path: r.str() };
    case 'rename':
      return { type, seq: r.u64(), host: r.str(), path: r.str(), to: r.str() };
    case 'setattr':
      return { type, seq: r.u64(), host: r.str(), path: r.str(), mode: r.u32(), mtimeMs: r.u64() };
    case 'hello':
      return { type, version: r.u16(), clientId: r.str() };
    case 'bulk': {
      const count = r.u32();
      if (count > r.remaining / 5) throw new KangarooError('BAD_FRAME', `bulk count ${count} exceeds the frame`);
      const ops: OrderedOp[] = [];
      for (let i = 0; i < count; i++) {
        const opcode = r.u8();
        const inner = r.blob();
        const innerType = messageTypeOf(opcode);
        if (!innerType || !ORDERED_TYPES.has(innerType)) {
          throw new KangarooError('BAD_FRAME', `bulk entry ${i} has opcode ${opcode}, not an ordered operation`);
        }
        ops.push(decodeBody(innerType, inner) as OrderedOp);
      }
      return { type, ops };
    }
    case 'get':
      return { type, host: r.str(), path: r.str(), offset: r.u64(), length: r.u32() };
    case 'bufOpen': {
      const host = r.str();
      const name = r.str();
      const role = r.u8();
      if (role !== 1 && role !== 2) throw new KangarooError('BAD_FRAME', `unknown buffer role ${role}`);
      return { type, host, name, role: role === 2 ? 'write' : 'read' };
    }
    case 'bufWrite':
      return { type, handle: r.u32(), offset: r.u64(), data: r.blob() };
    case 'bufRead':
      return { type, handle: r.u32(), offset: r.u64(), length: r.u32() };
    case 'bufClose':
      return { type, handle: r.u32() };
    case 'bufStat':
      return { type, host: r.str(), name: r.str() };
    case 'log':
      return { type, limit: r.u32() };
    case 'auth':
      return { type, response: r.blob() };
    case 'bufOpened':
      return { type, handle: r.u32(), size: r.u64() };
    case 'push':
    case 'stat':
    case 'list':
    case 'retry':
      return { type, host: r.str(), path: r.str() };
    case 'commit':
    case 'status':
    case 'ok':
      return { type };
    case 'error':
      return { type, code: r.str(), message: r.str() };
    case 'data':
      return { type, data: r.blob() };
    case 'statReply':
      return { type, info: readInfo(r) };
    case 'listReply': {
      const count = r.u32();
      if (count > r.remaining / 23) throw new KangarooError('BAD_FRAME', `list count ${count} exceeds the frame`);
      const entries: DirEntry[] = [];
      for (let i = 0; i < count; i++) {
        const name = r.str();
        entries.push({ name, ...readInfo(r) });
      }
      return { type, entries };
    }
    case 'bulkReply': {
      const count = r.u32();
      if (count > r.remaining / 8) throw new KangarooError('BAD_FRAME', `bulk reply count ${count} exceeds the frame`);
      const errors: BulkError[] = [];
      for (let i = 0; i < count; i++) errors.push({ index: r.u32(), code: r.str(), message: r.str() });
      return { type, errors };
    }
    case 'json': {
      const raw = r.blob();
      try {
        return { type, value: JSON.parse(raw.toString('utf8')) };
      } catch (err) {
        throw new KangarooError('BAD_FRAME', 'json reply is not valid JSON', { cause: err });
      }
    }
    case 'helloReply':
      return { type, name: r.str(), version: r.u16(), maxFrame: r.u32(), challenge: r.blob() };
  }
}

/** Approximate bytes an ordered op occupies when encoded; used for batching and spool accounting. */
export function opSize(op: OrderedOp): number {
  const base = 32 + op.host.length + op.path.length;
  if (op.type === 'put') return base + op.data.length;
  if (op.type === 'rename') return base + op.to.length;
  return base;
}

import { Message, MessageType, NO_MODE, OrderedOp } from '../../src/protocol/messages.js';
import { crc32 } from '../../src/util/crc32.js';

/**
 * Sample messages of every type of the wire protocol, with boundary values
 * (empty strings and payloads, u32 and 2^53 - 1 extremes, non-ASCII text, a
 * payload big enough to be framed without copying). The protocol tests
 * require one entry per opcode.
 */

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff));

/** A put as it decodes: with the checksum of its data (decoded puts always carry one). */
const put = (p: Partial<Extract<OrderedOp, { type: 'put' }>> = {}): OrderedOp => {
  const op = { type: 'put' as const, seq: 0, host: 'dest.example:9094', path: '/dir/file.txt', offset: 0, data: Buffer.from('hello'), ...p };
  return { ...op, sum: p.sum ?? crc32(op.data) };
};

/** Samples of every message, with boundary values; ids vary so id handling is covered too. */
export const SAMPLES: Record<MessageType, Message[]> = {
  hello: [
    { type: 'hello', version: 1, clientId: '' },
    { type: 'hello', version: 0xffff, clientId: '0123456789abcdef>gateway:9094' },
  ],
  get: [
    { type: 'get', host: 'h:1', path: '/', offset: 0, length: 0 },
    { type: 'get', host: '[::1]:9094', path: '/a/b', offset: MAX_SAFE, length: 0xffffffff },
  ],
  put: [
    put(),
    put({ seq: MAX_SAFE, offset: MAX_SAFE, data: Buffer.alloc(0), path: '/ünïcødé/文件' }),
    put({ seq: 1, offset: 4096, data: pattern(65) }), // just past the Writer's copy threshold
    put({ seq: 2, data: pattern(100_000) }),
  ],
  commit: [{ type: 'commit' }],
  push: [{ type: 'push', host: 'far.example:9094', path: '/x' }],
  stat: [
    { type: 'stat', host: '', path: '' },
    { type: 'stat', host: 'far.example:9094', path: '/some/where' },
  ],
  list: [{ type: 'list', host: 'far.example:9094', path: '/' }],
  truncate: [
    { type: 'truncate', seq: 3, host: 'h:1', path: '/t', size: 0 },
    { type: 'truncate', seq: 4, host: 'h:1', path: '/t', size: 2 ** 40 },
  ],
  mkdir: [
    { type: 'mkdir', seq: 5, host: 'h:1', path: '/d', mode: 0o755 },
    { type: 'mkdir', seq: 6, host: 'h:1', path: '/d', mode: 0xffffffff },
  ],
  unlink: [{ type: 'unlink', seq: 7, host: 'h:1', path: '/gone' }],
  rmdir: [{ type: 'rmdir', seq: 8, host: 'h:1', path: '/gone-dir' }],
  rename: [{ type: 'rename', seq: 9, host: 'h:1', path: '/from', to: '/tö' }],
  setattr: [
    { type: 'setattr', seq: 17, host: 'h:1', path: '/f', mode: 0o644, mtimeMs: 1_700_000_000_123 },
    { type: 'setattr', seq: 0, host: 'h:1', path: '/f', mode: NO_MODE, mtimeMs: 0 },
    { type: 'setattr', seq: MAX_SAFE, host: 'h:1', path: '/f', mode: 0, mtimeMs: MAX_SAFE },
  ],
  bulk: [
    { type: 'bulk', ops: [] },
    {
      type: 'bulk',
      ops: [
        put({ seq: 10, data: pattern(1000) }),
        { type: 'truncate', seq: 11, host: 'h:1', path: '/t', size: 12 },
        { type: 'mkdir', seq: 12, host: 'h:1', path: '/d', mode: 0o700 },
        { type: 'unlink', seq: 13, host: 'h:1', path: '/u' },
        { type: 'rmdir', seq: 14, host: 'h:1', path: '/r' },
        { type: 'rename', seq: 15, host: 'h:1', path: '/a', to: '/b' },
        { type: 'setattr', seq: 16, host: 'h:1', path: '/b', mode: 0o600, mtimeMs: 5 },
        put({ seq: 17, data: Buffer.alloc(0) }),
      ],
    },
  ],
  bufOpen: [
    { type: 'bufOpen', host: 'grid.example:9094', name: 'pipe-1', role: 'read' },
    { type: 'bufOpen', host: 'h:1', name: '', role: 'write' },
  ],
  bufWrite: [
    { type: 'bufWrite', handle: 1, offset: 0, data: Buffer.alloc(0) },
    { type: 'bufWrite', handle: 0x80000000, offset: MAX_SAFE, data: pattern(300) },
  ],
  bufRead: [{ type: 'bufRead', handle: 0xffffffff, offset: 12345, length: 65536 }],
  bufClose: [{ type: 'bufClose', handle: 7 }],
  bufStat: [{ type: 'bufStat', host: 'grid.example:9094', name: 'pipe-1' }],
  log: [{ type: 'log', limit: 100 }, { type: 'log', limit: 0 }],
  status: [{ type: 'status' }],
  retry: [
    { type: 'retry', host: 'far.example:9094', path: '' },
    { type: 'retry', host: 'far.example:9094', path: '/blocked' },
  ],
  ok: [{ type: 'ok' }],
  error: [
    { type: 'error', code: 'PATH_ESCAPE', message: '"/../x" climbs above the root' },
    { type: 'error', code: '', message: '' },
  ],
  data: [
    { type: 'data', data: Buffer.alloc(0) },
    { type: 'data', data: pattern(70) },
  ],
  statReply: [
    { type: 'statReply', info: { kind: 'file', size: MAX_SAFE, mtimeMs: 1_700_000_000_123, mode: 0o644 } },
    { type: 'statReply', info: { kind: 'dir', size: 4096, mtimeMs: 0, mode: 0o755 } },
    { type: 'statReply', info: { kind: 'other', size: 0, mtimeMs: 1, mode: 0 } },
  ],
  listReply: [
    { type: 'listReply', entries: [] },
    {
      type: 'listReply',
      entries: [
        { name: 'a', kind: 'file', size: 3, mtimeMs: 5, mode: 0o600 },
        { name: 'sub dir', kind: 'dir', size: 4096, mtimeMs: 6, mode: 0o755 },
        { name: 'fifo', kind: 'other', size: 0, mtimeMs: 7, mode: 0o644 },
      ],
    },
  ],
  bulkReply: [
    { type: 'bulkReply', errors: [] },
    {
      type: 'bulkReply',
      errors: [
        { index: 0, code: 'PATH_ESCAPE', message: 'no' },
        { index: 0xffffffff, code: 'ABORTED', message: 'skipped' },
      ],
    },
  ],
  json: [
    { type: 'json', value: null },
    { type: 'json', value: { name: 'r', n: 1.5, list: [1, 'two', { three: true }], nested: { deep: [] } } },
    { type: 'json', value: 'just a string' },
  ],
  helloReply: [
    { type: 'helloReply', name: '127.0.0.1:9094', version: 1, maxFrame: 16 * 1024 * 1024 + 4096, challenge: Buffer.alloc(0) },
    { type: 'helloReply', name: 'relay.example:9094', version: 1, maxFrame: 1024, challenge: Buffer.alloc(32, 7) },
  ],
  auth: [{ type: 'auth', response: Buffer.alloc(32, 0xab) }],
  bufOpened: [
    { type: 'bufOpened', handle: 1, size: 0 },
    { type: 'bufOpened', handle: 0xffffffff, size: MAX_SAFE },
  ],
};

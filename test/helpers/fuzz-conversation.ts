import { encodeFrameBuffer } from '../../src/protocol/frame.js';
import { NO_MODE, OPCODES, OrderedOp, PROTOCOL_VERSION, Request } from '../../src/protocol/messages.js';
import { mutate, rawFrame, refit, Rng } from './fuzz.js';

/**
 * Fuzzed conversations for a live relay: a hello and a few requests on files under
 * /fuzz of the relay's own host, then broken in one of several ways. Valid requests
 * name only the relay itself, so a run does not reach out to other hosts unless a
 * mutation invents one.
 */

const FUZZ_PATHS = ['/fuzz/a', '/fuzz/b', '/fuzz/d/c', '/fuzz/d', '/fuzz', '/fuzz/e/f/g'];

function validOp(rng: Rng, host: string): OrderedOp {
  const p = rng.pick(FUZZ_PATHS);
  switch (rng.int(7)) {
    case 0:
    case 1:
      return { type: 'put', seq: rng.chance(0.5) ? 0 : 1 + rng.int(100), host, path: p, offset: rng.int(3000), data: rng.bytes(rng.int(400)) };
    case 2:
      return { type: 'truncate', seq: 0, host, path: p, size: rng.int(5000) };
    case 3:
      return { type: 'mkdir', seq: 0, host, path: p, mode: rng.pick([0o755, 0o700, 0]) };
    case 4:
      return rng.chance(0.5) ? { type: 'unlink', seq: 0, host, path: p } : { type: 'rmdir', seq: 0, host, path: p };
    case 5:
      return { type: 'setattr', seq: 0, host, path: p, mode: rng.pick([NO_MODE, 0o644, 0o755, 0o4755, 0]), mtimeMs: rng.pick([0, Date.now(), 1]) };
    default:
      return { type: 'rename', seq: 0, host, path: p, to: rng.pick(FUZZ_PATHS) };
  }
}

function validRequest(rng: Rng, host: string): Request {
  const p = rng.pick(FUZZ_PATHS);
  switch (rng.int(10)) {
    case 0:
      return { type: 'bulk', ops: Array.from({ length: rng.int(6) }, () => validOp(rng, host)) };
    case 1:
      return { type: 'get', host, path: p, offset: rng.int(4000), length: rng.int(8000) };
    case 2:
      return rng.chance(0.5) ? { type: 'stat', host, path: p } : { type: 'list', host, path: p };
    case 3:
      return { type: 'commit' };
    case 4:
      return rng.chance(0.7) ? { type: 'status' } : { type: 'push', host, path: p };
    default:
      return validOp(rng, host);
  }
}

/** Field values a hostile peer would try, all well-formed on the wire. */
const HOSTILE_PATHS = ['/..', '../x', '/fuzz/../../x', '', '/', 'a\0b', 'x'.repeat(300), '/' + 'y/'.repeat(2100), '/fuzz/./a//'];
const HOSTILE_HOSTS = ['', 'bad host', '[::1', 'x:99999', '127.0.0.1:1', '\u0000'];

function hostileRequest(rng: Rng, host: string): Request {
  const req = validRequest(rng, host) as Record<string, unknown> & Request;
  if ('path' in req && rng.chance(0.6)) req.path = rng.pick(HOSTILE_PATHS);
  if ('host' in req && rng.chance(0.3)) req.host = rng.pick(HOSTILE_HOSTS);
  if ('offset' in req && rng.chance(0.3)) req.offset = rng.pick([Number.MAX_SAFE_INTEGER, 2 ** 40, 2 ** 32]);
  if ('length' in req && rng.chance(0.5)) req.length = rng.pick([0, 0xffffffff, 16 * 1024 * 1024]);
  if ('size' in req && rng.chance(0.5)) req.size = rng.pick([Number.MAX_SAFE_INTEGER, 2 ** 41]);
  if ('mtimeMs' in req && rng.chance(0.5)) req.mtimeMs = rng.pick([Number.MAX_SAFE_INTEGER, 8.64e15 + 1]);
  if ('to' in req && rng.chance(0.5)) req.to = rng.pick(HOSTILE_PATHS);
  return req;
}

/**
 * One conversation: a hello and a few requests, then broken in one of four ways.
 * Strategies: 'frames' mutates single frames and repairs their crc (the bytes reach the
 * handlers); 'bytes' mutates the raw stream (the decoder's problem); 'fields' sends
 * well-formed frames with hostile values; 'order' drops, repeats and shuffles frames.
 */
export function fuzzCase(rng: Rng, host: string): { strategy: string; stream: Buffer } {
  const strategy = rng.pick(['frames', 'bytes', 'fields', 'order']);
  const frames: Buffer[] = [encodeFrameBuffer(1, { type: 'hello', version: PROTOCOL_VERSION, clientId: rng.chance(0.2) ? `fuzz-${rng.int(3)}` : '' })];
  const n = 1 + rng.int(8);
  for (let i = 0; i < n; i++) {
    const req = strategy === 'fields' ? hostileRequest(rng, host) : validRequest(rng, host);
    frames.push(encodeFrameBuffer(2 + i, req));
  }
  switch (strategy) {
    case 'frames':
      for (let i = 0; i < frames.length; i++) if (rng.chance(0.4)) frames[i] = refit(mutate(rng, frames[i]!));
      break;
    case 'bytes':
      return { strategy, stream: mutate(rng, Buffer.concat(frames)) };
    case 'order': {
      const out: Buffer[] = [];
      for (const f of frames) {
        if (rng.chance(0.2)) continue;
        out.push(f);
        if (rng.chance(0.2)) out.push(f);
      }
      for (let i = out.length - 1; i > 0; i--) {
        if (rng.chance(0.3)) {
          const j = rng.int(i + 1);
          [out[i], out[j]] = [out[j]!, out[i]!];
        }
      }
      if (rng.chance(0.2)) out.push(rawFrame(rng.pick([0, 99, 200, OPCODES.ok, OPCODES.helloReply]), 77, rng.bytes(rng.int(20))));
      return { strategy, stream: Buffer.concat(out) };
    }
  }
  return { strategy, stream: Buffer.concat(frames) };
}

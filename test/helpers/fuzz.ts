import { crc32 } from '../../src/util/crc32.js';

/**
 * Seeded randomness and frame surgery for the protocol fuzz tests. Every fuzz
 * run prints its seed; set KANGAROO_FUZZ_SEED to replay a failing run exactly.
 */

export interface Rng {
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [0, n). */
  int(n: number): number;
  bytes(n: number): Buffer;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

/** mulberry32: small, fast, and good enough to drive a fuzzer reproducibly. */
export function makeRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    seed: seed >>> 0,
    next,
    int,
    bytes(n) {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = int(256);
      return b;
    },
    pick: (items) => items[int(items.length)]!,
    chance: (p) => next() < p,
  };
}

/** KANGAROO_FUZZ_SEED when set (to replay a failure), otherwise a fresh seed. */
export function fuzzSeed(): number {
  const env = process.env.KANGAROO_FUZZ_SEED;
  if (env !== undefined && env !== '') return Number(env) >>> 0;
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 0x100000000)) >>> 0;
}

/** A frame with a correct length field and crc around any opcode, id and body bytes. */
export function rawFrame(opcode: number, id: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const f = Buffer.alloc(13 + body.length);
  f.writeUInt8(opcode, 8);
  f.writeUInt32BE(id >>> 0, 9);
  body.copy(f, 13);
  return refit(f);
}

/**
 * Rewrites the length field and the crc of one (possibly mutated) frame so it
 * passes framing and reaches the body decoder. Too-short input is returned as is.
 */
export function refit(frame: Buffer): Buffer {
  if (frame.length < 8) return frame;
  const f = Buffer.from(frame);
  f.writeUInt32BE(f.length - 4, 0);
  f.writeUInt32BE(crc32(f.subarray(8)), 4);
  return f;
}

const INTERESTING_U32 = [0, 1, 4, 8, 9, 0x7f, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

/** Applies one to four random edits: flips, overwrites, truncation, extension, insertion, deletion, duplication. */
export function mutate(rng: Rng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(8)) {
      case 0: // flip one byte
        if (b.length > 0) b[Math.min(at, b.length - 1)]! ^= 1 + rng.int(255);
        break;
      case 1: // overwrite a 32-bit field with a boundary value (lengths and counts are u32)
        if (b.length >= 4) b.writeUInt32BE(rng.pick(INTERESTING_U32), Math.min(at, b.length - 4));
        break;
      case 2: // overwrite a 16-bit field (string lengths are u16)
        if (b.length >= 2) b.writeUInt16BE(rng.pick([0, 1, 0xff, 0x100, 0xfffe, 0xffff]), Math.min(at, b.length - 2));
        break;
      case 3: // truncate
        b = b.subarray(0, at);
        break;
      case 4: // extend with random bytes
        b = Buffer.concat([b, rng.bytes(1 + rng.int(32))]);
        break;
      case 5: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(8)), b.subarray(at)]);
        break;
      case 6: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(8)))]);
        break;
      case 7: // duplicate a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + rng.int(16)), b.subarray(at)]);
        break;
    }
  }
  return b;
}

/** Splits a buffer into random chunks, as a socket might deliver it. */
export function randomChunks(rng: Rng, b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < b.length) {
    const n = 1 + rng.int(rng.chance(0.5) ? 16 : b.length);
    out.push(b.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

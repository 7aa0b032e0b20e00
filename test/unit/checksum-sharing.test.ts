import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KangarooError } from '../../src/errors.js';
import { decodeFrame, encodeFrameBuffer } from '../../src/protocol/frame.js';
import { Message, PutOp, putIntact } from '../../src/protocol/messages.js';
import { encodeOpRecord } from '../../src/spool/records.js';
import { crc32, crc32Combine } from '../../src/util/crc32.js';
import { makeRng } from '../helpers/fuzz.js';

/**
 * One pass over a put's data serves three checks (frame CRC, end-to-end sum,
 * journal record CRC) through crc32Combine. These tests guard that the shortcut
 * gives exactly the CRCs a full pass would, and still catches every damaged byte.
 */

const MiB = 1024 * 1024;

function put(data: Buffer, sum?: number): PutOp {
  return { type: 'put', seq: 7, host: 'dest.example:9094', path: '/run/out.dat', offset: 3 * MiB, data, ...(sum === undefined ? {} : { sum }) };
}

/** The frame's CRC computed the plain way: one crc32 over opcode, id and body. */
function plainFrameCrc(frame: Buffer): number {
  return crc32(frame.subarray(8));
}

describe('crc32Combine', () => {
  it('equals the CRC of the concatenation for lengths from 0 to 16 MiB', () => {
    const rng = makeRng(11);
    for (const [a, b] of [[0, 0], [0, 1], [1, 0], [3, 5], [100, 65_536], [65_537, 1], [13, MiB], [1, 16 * MiB + 3]] as const) {
      const A = crypto.randomBytes(a);
      const B = crypto.randomBytes(b);
      expect(crc32Combine(crc32(A), crc32(B), b), `${a}+${b}`).toBe(crc32(Buffer.concat([A, B])));
    }
    for (let i = 0; i < 50; i++) {
      const A = crypto.randomBytes(rng.int(5000));
      const B = crypto.randomBytes(rng.int(5000));
      expect(crc32Combine(crc32(A), crc32(B), B.length)).toBe(crc32(Buffer.concat([A, B])));
    }
  });
});

describe('a large put checked in one pass', () => {
  const data = crypto.randomBytes(MiB + 17);

  it('is encoded with the same frame CRC a full pass gives, with or without a known data CRC', () => {
    for (const msg of [put(data), put(data, crc32(data)), { ...put(data, crc32(data)), dataCrc: crc32(data) }]) {
      const frame = encodeFrameBuffer(5, msg);
      expect(frame.readUInt32BE(4)).toBe(plainFrameCrc(frame));
    }
  });

  // White-box: the encoder takes a known dataCrc on trust, in a put and inside a bulk frame
  // (a wrong one shows up as a frame the decoder refuses, so it must only come from a real pass).
  it('uses a known data CRC instead of reading the data again, also inside bulk frames', () => {
    const wrong = crc32(data) ^ 1;
    const single = encodeFrameBuffer(5, { ...put(data, crc32(data)), dataCrc: wrong });
    expect(single.readUInt32BE(4)).not.toBe(plainFrameCrc(single));
    const bulk = encodeFrameBuffer(6, { type: 'bulk', ops: [{ ...put(data, crc32(data)), dataCrc: wrong }] });
    expect(bulk.readUInt32BE(4)).not.toBe(plainFrameCrc(bulk));
    expect(() => decodeFrame(bulk)).toThrow(/checksum/);
  });

  it('decodes with the CRC of its data, so the sum check needs no second pass', () => {
    const { msg } = decodeFrame(encodeFrameBuffer(5, put(data)));
    expect(msg.type).toBe('put');
    const p = msg as PutOp;
    expect(p.dataCrc).toBe(crc32(data));
    expect(putIntact(p)).toBe(true);
  });

  it('a bulk frame gives each large put its own data CRC', () => {
    const other = crypto.randomBytes(200_000);
    const bulk: Message = { type: 'bulk', ops: [put(data), { type: 'mkdir', seq: 0, host: 'h', path: '/d', mode: 0o755 }, put(other)] };
    const frame = encodeFrameBuffer(9, bulk);
    expect(frame.readUInt32BE(4)).toBe(plainFrameCrc(frame));
    const { msg } = decodeFrame(frame);
    if (msg.type !== 'bulk') throw new Error('not a bulk frame');
    expect((msg.ops[0] as PutOp).dataCrc).toBe(crc32(data));
    expect((msg.ops[2] as PutOp).dataCrc).toBe(crc32(other));
  });

  it('a flipped byte anywhere (header, path, data) is a checksum mismatch', () => {
    const frame = encodeFrameBuffer(5, put(data));
    for (const at of [8, 12, 20, 40, 60, frame.length - data.length, frame.length - data.length + 1000, frame.length - 1]) {
      const bad = Buffer.from(frame);
      bad[at] ^= 0x10;
      let caught: unknown;
      try {
        decodeFrame(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught, `byte ${at}`).toBeInstanceOf(KangarooError);
      expect((caught as KangarooError).code, `byte ${at}`).toBe('BAD_FRAME');
    }
  });

  it('data that does not match the sum it was sent with is found out, in an intact frame', () => {
    const wrong = put(data, crc32(data) ^ 1);
    const { msg } = decodeFrame(encodeFrameBuffer(5, wrong));
    expect(putIntact(msg as PutOp)).toBe(false);
  });

  it('the journal record CRC taken from the known data CRC equals a full pass', () => {
    const { msg } = decodeFrame(encodeFrameBuffer(5, put(data)));
    const enc = encodeOpRecord(42, { clientId: 'c1', seq: 3 }, msg as PutOp);
    expect(enc.crc).toBe(crc32(Buffer.concat(enc.payload)));
  });
});

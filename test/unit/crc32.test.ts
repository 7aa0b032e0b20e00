import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, simdCrc32 } from '../../src/util/crc32.js';
import { makeRng } from '../helpers/fuzz.js';

/**
 * Large buffers are checksummed by the SIMD package, small ones by zlib: both must
 * give zlib's CRC-32, whatever the length, seed and the buffer's place in memory.
 */
describe('crc32', () => {
  it('uses the SIMD package (npm installs its build for linux x64, where this project runs)', () => {
    expect(simdCrc32).toBe(true);
  });

  it("equals zlib's CRC-32 for lengths around the switch, odd offsets and seeds", () => {
    const rng = makeRng(5);
    const big = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i++) big[i] = rng.int(256);
    for (const length of [0, 1, 15, 64, 4095, 4096, 4097, 65_537, 1024 * 1024, 3 * 1024 * 1024]) {
      for (const offset of [0, 1, 7]) {
        const data = big.subarray(offset, offset + length);
        for (const seed of [0, 1, 0xdeadbeef]) expect(crc32(data, seed), `${length} bytes at ${offset}, seed ${seed}`).toBe(zlib.crc32(data, seed) >>> 0);
      }
    }
    // a Uint8Array that is not a Buffer takes the zlib path and agrees
    const plain = new Uint8Array(big.buffer, big.byteOffset, 8192);
    expect(crc32(plain, 9)).toBe(zlib.crc32(plain, 9) >>> 0);
  });
});

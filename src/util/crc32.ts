import zlib from 'node:zlib';

/**
 * CRC-32 (IEEE) of a buffer, continuing from `seed`. Node >= 20.15 has a native one in zlib;
 * older Node 20 releases fall back to a table-driven version here.
 */
export const crc32: (data: Uint8Array, seed?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (data, seed = 0) => (data.length === 0 ? seed >>> 0 : (zlib as unknown as { crc32(d: Uint8Array, s: number): number }).crc32(data, seed))
    : tableCrc32;

let TABLE: Uint32Array | undefined;

function tableCrc32(data: Uint8Array, seed = 0): number {
  if (!TABLE) {
    TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      TABLE[n] = c >>> 0;
    }
  }
  let crc = (seed ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/*
 * crc32Combine: the CRC of A followed by B, from crc(A), crc(B) and B's length,
 * without reading either again (zlib's crc32_combine, by GF(2) matrix powers).
 * It lets one pass over a large payload serve several checks: the frame CRC, the
 * put's end-to-end sum and the journal record CRC all cover the same data.
 */

/** Below this size reading data again is cheaper than a combine (about 20 µs). */
export const COMBINE_MIN_BYTES = 64 * 1024;

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]!);
}

export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0xedb88320; // the operator for one zero bit
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row;
  gf2Square(even, odd); // two zero bits
  gf2Square(odd, even); // four zero bits
  let crc = crcA >>> 0;
  let len = lengthB;
  // apply len zero bytes to crcA, one bit of len at a time
  do {
    gf2Square(even, odd);
    if (len & 1) crc = gf2Times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len & 1) crc = gf2Times(odd, crc);
    len = Math.floor(len / 2);
  } while (len !== 0);
  return (crc ^ crcB) >>> 0;
}

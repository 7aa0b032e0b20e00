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

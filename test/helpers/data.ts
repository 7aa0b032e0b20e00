import crypto from 'node:crypto';
import fs from 'node:fs';
import { RelayClient } from '../../src/client/client.js';

/** Deterministic pseudo-random bytes (so a failure can be replayed), fast enough for 100 MiB. */
export function patternChunk(seed: number, index: number, size: number): Buffer {
  const key = crypto.createHash('sha256').update(`${seed}:${index}`).digest();
  const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return cipher.update(Buffer.alloc(size));
}

export interface Written {
  bytes: number;
  sha256: string;
}

/** Writes `total` bytes of seeded data to a remote file through a relay, in `chunk`-sized puts. */
export async function writeFile(
  client: RelayClient,
  host: string,
  path: string,
  total: number,
  seed = 1,
  chunk = 1024 * 1024,
): Promise<Written> {
  const hash = crypto.createHash('sha256');
  await client.truncate(host, path, 0);
  for (let off = 0, i = 0; off < total; off += chunk, i++) {
    const data = patternChunk(seed, i, Math.min(chunk, total - off));
    hash.update(data);
    await client.put(host, path, off, data);
  }
  return { bytes: total, sha256: hash.digest('hex') };
}

export function expectedSha(total: number, seed = 1, chunk = 1024 * 1024, upTo = total): string {
  const hash = crypto.createHash('sha256');
  for (let off = 0, i = 0; off < upTo; off += chunk, i++) hash.update(patternChunk(seed, i, Math.min(chunk, total - off)).subarray(0, Math.min(chunk, upTo - off)));
  return hash.digest('hex');
}

export async function sha256File(file: string, length?: number): Promise<string> {
  const hash = crypto.createHash('sha256');
  const stream = fs.createReadStream(file, length !== undefined ? { start: 0, end: length - 1 } : {});
  for await (const c of stream) hash.update(c as Buffer);
  return hash.digest('hex');
}

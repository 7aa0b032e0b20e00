import crypto from 'node:crypto';
import fs from 'node:fs';
import type { RelayClient } from '../../src/client/client.js';
import { MiB } from './stats.js';

/**
 * The bytes a run writes: distinct 1 MiB chunks (each starts with its index, so a
 * chunk delivered at the wrong offset changes the checksum), made before any timing
 * starts and never modified afterwards (a socket may still hold them after put returns).
 */
export interface Payload {
  chunks: Buffer[];
  bytes: number;
  sha256: string;
}

/** Writes the payload as one file through a relay client: a truncate, then a put per chunk (not committed). */
export async function putPayload(client: RelayClient, host: string, file: string, payload: Payload): Promise<void> {
  await client.truncate(host, file, 0);
  let offset = 0;
  for (const chunk of payload.chunks) {
    await client.put(host, file, offset, chunk);
    offset += chunk.length;
  }
}

export function makePayload(mib: number): Payload {
  const base = crypto.randomBytes(MiB);
  const hash = crypto.createHash('sha256');
  const chunks: Buffer[] = [];
  for (let i = 0; i < mib; i++) {
    const c = Buffer.from(base);
    c.writeUInt32BE(i, 0);
    c.write('kngr', 4, 'latin1');
    hash.update(c);
    chunks.push(c);
  }
  return { chunks, bytes: mib * MiB, sha256: hash.digest('hex') };
}

export async function fileSha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Size of a file, 0 when it does not exist (yet). */
export async function sizeOf(file: string): Promise<number> {
  try {
    return (await fs.promises.stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/** Throws unless the file has exactly the payload's bytes. */
export async function verifyFile(file: string, payload: Payload, what: string): Promise<void> {
  const size = await sizeOf(file);
  if (size !== payload.bytes) throw new Error(`${what}: destination file has ${size} bytes, expected ${payload.bytes}`);
  const sum = await fileSha256(file);
  if (sum !== payload.sha256) throw new Error(`${what}: destination file has the right size but different content`);
}

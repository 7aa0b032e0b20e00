import crypto from 'node:crypto';
import { MiB } from '../stats.js';

/**
 * What writer.py writes, computed without running it: a file's sha256 when it is
 * complete. The program may fail before it can report its checksums (that is what
 * the fault runs provoke), and the destination is still judged against these.
 */

const BASE = crypto.createHash('shake256', { outputLength: MiB }).update('kangaroo-wan').digest();

export function expectedSha256(tag: string, mib: number): string {
  const h = crypto.createHash('sha256');
  for (let i = 0; i < mib; i++) {
    const head = Buffer.from(`${tag}:${i}:`);
    h.update(head);
    h.update(BASE.subarray(head.length));
  }
  return h.digest('hex');
}

export const burstTag = 'burst';
export const overlapTag = (k: number) => `out${k}`;
export const overlapName = (k: number) => `out-${String(k).padStart(2, '0')}.bin`;

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Has glibc serve 1 MiB buffers from its heap and keep freed memory for the next ones
 * (native/malloc-tuning.c says why and what it measured). Called once at the start of
 * a relay or a mount, before the buffers flow. Returns what happened, for the log.
 */

const MMAP_THRESHOLD = 32 * 1024 * 1024;
/** Freed heap kept by the process: the price of the tuning, in memory. */
const TRIM_THRESHOLD = 256 * 1024 * 1024;
const TOP_PAD = 64 * 1024 * 1024;

export function tuneMalloc(): string {
  const module = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/build/kangaroo-malloc.node');
  if (!fs.existsSync(module)) return 'allocator untuned: native/build/kangaroo-malloc.node is not built (node scripts/build-native.cjs)';
  try {
    const require = createRequire(import.meta.url);
    const { tune } = require(module) as { tune(mmap: number, trim: number, pad: number): boolean };
    return tune(MMAP_THRESHOLD, TRIM_THRESHOLD, TOP_PAD)
      ? 'allocator tuned for 1 MiB buffers (heap up to 32 MiB blocks, 256 MiB of freed heap kept)'
      : 'allocator untuned: this C library has no mallopt';
  } catch (err) {
    return `allocator untuned: ${(err as Error).message}`;
  }
}

import { once } from './once.js';

/**
 * Buffers for the data of large puts, reused once it has been written where it
 * goes (the spool's journal, or a destination's file) instead of left to the
 * garbage collector. A fresh buffer for every MiB a program writes made V8 collect
 * garbage over and over (a major GC for every 64 MiB of new buffers): perf showed
 * it costing as much CPU as the copy that filled them, in the mount's embedded
 * relay (in-process-transport.ts) and in a relay reading puts from a socket
 * (frame.ts's FrameDecoder), which both take their buffers from here.
 *
 * Whoever fills one hands its release on as PutOp.recycle. Not calling it is
 * always safe (the buffer is collected); calling it while the data is still
 * referred to is not, so only the one that writes the data out calls it.
 */

/** A whole put frame of 1 MiB of data: the data, and room for its header (host and path are up to 64 KiB each). */
export const PUT_BUFFER_BYTES = 1024 * 1024 + 136 * 1024;
/** Smaller puts are copied into buffers of their own size: the pool would waste most of a buffer on them. */
const PUT_BUFFER_MIN = 256 * 1024;
/** Enough for what the spool lets wait for its disk and a connection's queue; more are collected. */
const POOL_MAX = 48;
const pool: Buffer[] = [];

/** Whether `n` bytes (a put's data, or a whole put frame) go into a put buffer. */
export function fitsPutBuffer(n: number): boolean {
  return n >= PUT_BUFFER_MIN && n <= PUT_BUFFER_BYTES;
}

/** A buffer of PUT_BUFFER_BYTES (old contents), and the call that gives it back. */
export function takePutBuffer(): { buffer: Buffer; recycle: () => void } {
  const buffer = pool.pop() ?? Buffer.allocUnsafeSlow(PUT_BUFFER_BYTES);
  return {
    buffer,
    recycle: once(() => {
      if (pool.length < POOL_MAX) pool.push(buffer);
    }),
  };
}

/** Buffers waiting to be reused (tests). */
export function pooledPutBuffers(): number {
  return pool.length;
}

import net from 'node:net';

/**
 * Has a connected socket read straight into buffers the caller chooses, instead of
 * into a fresh 64 KiB buffer per read that is then emitted as 'data' and copied.
 *
 * Node offers this as the `onread` option of net.connect, but not for the sockets a
 * server accepts, which are a relay's. It is the same machinery either way: the
 * socket keeps the option in three fields (Node 20's lib/net.js, symbols named
 * kBuffer, kBufferGen and kBufferCb) and hands the handle the first buffer, which is
 * what is done here to a socket already made. Where those fields are missing (a
 * Node that keeps them differently), this returns false and the caller listens for
 * 'data' as before; a test checks that it works on the Node the project runs on.
 *
 * `next` gives the buffer for the next read (never empty); `received` is told how
 * many bytes went into it. Bytes the socket read before the switch come first,
 * as chunks given to `early`. Pausing the socket stops reading from the kernel, so a
 * paused reader holds back its peer as with 'data'.
 */
export function readIntoBuffers(socket: net.Socket, next: () => Buffer, received: (n: number) => void, early: (chunk: Buffer) => void): boolean {
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (b: Uint8Array) => void } })._handle;
  const symbols = Object.getOwnPropertySymbols(socket);
  const field = (name: string) => symbols.find((s) => s.description === name);
  const [kBuffer, kBufferGen, kBufferCb] = [field('kBuffer'), field('kBufferGen'), field('kBufferCb')];
  if (!handle?.useUserBuffer || !kBuffer || !kBufferGen || !kBufferCb) return false;

  // whatever the stream already holds was read the ordinary way
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) early(chunk);
  const fields = socket as unknown as Record<symbol, unknown>;
  const first = next();
  fields[kBuffer] = first;
  fields[kBufferGen] = next;
  fields[kBufferCb] = (n: number) => {
    received(n);
    return true;
  };
  handle.useUserBuffer(first);
  return true;
}


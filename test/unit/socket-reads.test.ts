import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { readIntoBuffers } from '../../src/client/socket-reads.js';

/**
 * Sockets reading into buffers the reader chooses (socket-reads.ts), over real
 * loopback TCP: the sockets a server accepts (a relay's) and those net.connect
 * makes (a client's). Where this stops working on the project's Node, the
 * transport falls back to 'data' events and relays get slower: these tests say so.
 */

const opened: { close(): void }[] = [];
afterEach(() => {
  for (const o of opened.splice(0)) o.close();
});

/** A connected pair: the client's socket and the socket the server accepted. */
async function pair(): Promise<{ client: net.Socket; accepted: net.Socket }> {
  const server = net.createServer();
  opened.push({ close: () => server.close() });
  const acceptedP = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  const accepted = await acceptedP;
  opened.push({ close: () => (client.destroy(), accepted.destroy()) });
  return { client, accepted };
}

/** A reader that fills buffers of `size` bytes one after the other, and what it got. */
function collector(size: number) {
  const got: Buffer[] = [];
  let current = Buffer.alloc(size);
  let filled = 0;
  let total = 0;
  return {
    next: () => current.subarray(filled),
    received: (n: number) => {
      filled += n;
      total += n;
      if (filled === size) {
        got.push(current);
        current = Buffer.alloc(size);
        filled = 0;
      }
    },
    /** Bytes read before the switch: copied into the same buffers. */
    early(chunk: Buffer) {
      for (let at = 0; at < chunk.length; ) {
        const n = chunk.copy(this.next(), 0, at);
        at += n;
        this.received(n);
      }
    },
    bytes: () => Buffer.concat([...got, current.subarray(0, filled)]),
    get total() {
      return total;
    },
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 12)) & 0xff;
  return b;
}

describe('reading into chosen buffers', () => {
  it('an accepted socket and a connected one both switch, and bytes arrive whole and in order, no read past the buffer given', async () => {
    const { client, accepted } = await pair();
    for (const [from, to] of [
      [client, accepted],
      [accepted, client],
    ] as const) {
      const c = collector(100_000); // not a multiple of anything a socket reads
      expect(readIntoBuffers(to, c.next, c.received, (b) => c.early(b))).toBe(true);
      to.resume();
      const data = pattern(3 * 1024 * 1024 + 17);
      from.write(data);
      await until(() => c.total === data.length, 'all bytes');
      expect(c.bytes().equals(data)).toBe(true);
    }
  });

  it('bytes the socket read before the switch come first', async () => {
    const { client, accepted } = await pair();
    const early = pattern(5000);
    client.write(early);
    await until(() => accepted.readableLength === early.length, 'the early bytes buffered');
    const c = collector(4096);
    expect(readIntoBuffers(accepted, c.next, c.received, (b) => c.early(b))).toBe(true);
    expect(c.total).toBe(early.length);
    accepted.resume();
    const late = pattern(70_000).reverse();
    client.write(late);
    await until(() => c.total === early.length + late.length, 'the later bytes');
    expect(c.bytes().equals(Buffer.concat([early, late]))).toBe(true);
  });

  it('a paused socket stops reading: the sender backs up until it resumes', async () => {
    const { client, accepted } = await pair();
    const c = collector(1024 * 1024);
    readIntoBuffers(accepted, c.next, c.received, (b) => c.early(b));
    accepted.pause();
    const data = pattern(16 * 1024 * 1024);
    let drained = false;
    if (client.write(data)) drained = true;
    else client.once('drain', () => (drained = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(c.total).toBe(0);
    expect(drained).toBe(false);
    accepted.resume();
    await until(() => c.total === data.length, 'all bytes after resume');
    expect(c.bytes().equals(data)).toBe(true);
  });
});

import crypto from 'node:crypto';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { encodeFrameBuffer, Frame, FrameDecoder } from '../../src/protocol/frame.js';
import { Message, PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * Commit groups in flight at once (a mover keeps several on its connection) are
 * released from a first hop's spool in the order they were sent. A later group
 * released first left a file's view in the spool with an earlier truncate and
 * without the later put that the next hop already had: a program re-reading a
 * file it had just rewritten got 0 bytes back.
 */

/**
 * A scripted next hop: holds its answers to hello until `greet` (so a mover finds
 * everything spooled once connected), answers bulk frames at once and holds every
 * commit until the test answers it, in whatever order it likes. For each commit it
 * records how many put bytes had arrived before it.
 */
class HeldCommitHop {
  putBytes = 0;
  private answering = false;
  private greeting = false;
  private heldHellos: (() => void)[] = [];
  readonly commits: { socket: net.Socket; id: number; putBytesBefore: number; answered: boolean }[] = [];
  private sockets = new Set<net.Socket>();
  private server = net.createServer((socket) => {
    this.sockets.add(socket);
    const send = (id: number, msg: Message) => socket.write(encodeFrameBuffer(id, msg));
    const decoder = new FrameDecoder(({ id, msg }: Frame) => {
      if (msg.type === 'hello') {
        const greet = () => send(id, { type: 'helloReply', name: this.address, version: PROTOCOL_VERSION, maxFrame: 16 * 1024 * 1024 + 4096, challenge: Buffer.alloc(0) });
        if (this.greeting) greet();
        else this.heldHellos.push(greet);
      }
      else if (msg.type === 'bulk') {
        for (const op of msg.ops) if (op.type === 'put') this.putBytes += op.data.length;
        send(id, { type: 'bulkReply', errors: [] });
      } else if (msg.type === 'commit') {
        this.commits.push({ socket, id, putBytesBefore: this.putBytes, answered: false });
        if (this.answering) this.answer(this.commits.length - 1);
      }
      else if (msg.type === 'get' || msg.type === 'stat') send(id, { type: 'error', code: 'NOT_FOUND', message: 'no such file here' });
      else send(id, { type: 'ok' });
    }, 64 * 1024 * 1024);
    socket.on('data', (d) => decoder.push(d));
    socket.on('error', () => undefined);
  });
  address = '';

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.address = `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** Answers the hellos held so far, and from now on every hello at once. */
  greet(): void {
    this.greeting = true;
    for (const g of this.heldHellos.splice(0)) g();
  }

  /** From now on every commit is answered as it comes. */
  answerAll(): void {
    this.answering = true;
    this.commits.forEach((c, i) => c.answered || this.answer(i));
  }

  answer(i: number): void {
    const c = this.commits[i]!;
    c.answered = true;
    c.socket.write(encodeFrameBuffer(c.id, { type: 'ok' }));
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

describe('commit groups in flight at once', () => {
  it('a destination relay answers the commits of one connection in the order they were sent', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const client = await RelayClient.connect(dest.address);
    onTestFinished(() => client.destroy());
    const data = crypto.randomBytes(1024 * 1024);
    for (let round = 0; round < 3; round++) {
      // the first commit has a big file to fsync; the second, sent right behind it, finds nothing
      // dirty left (the first took it) and must still not answer before it
      for (let i = 0; i < 24; i++) await client.put(dest.address, `/big-${round}.bin`, i * data.length, data);
      const order: number[] = [];
      const first = client.commit().then(() => order.push(1));
      const second = client.commit().then(() => order.push(2));
      await Promise.all([first, second]);
      expect(order, `round ${round}`).toEqual([1, 2]);
    }
  });

  it('a first hop keeps a rewritten file readable while the next hop answers a later commit before an earlier one', async () => {
    const dir = await tempDir();
    const next = new HeldCommitHop();
    await next.listen();
    onTestFinished(() => next.close());
    const host = 'far.example:9094';
    const hop = await startRelay(dir, 'hop', { routes: [`${host}=${next.address}`] });
    const client = await RelayClient.connect(hop.address);
    onTestFinished(() => client.destroy());

    // a rewrite: truncate, then 40 MiB, more than one commit group (at most 32 MiB each)
    const chunk = 1024 * 1024;
    const data = crypto.randomBytes(40 * chunk);
    await client.truncate(host, '/out.dat', 0);
    for (let off = 0; off < data.length; off += chunk) await client.put(host, '/out.dat', off, data.subarray(off, off + chunk));
    await client.commit();
    // connected now, the mover finds all 40 MiB: a group closed at 32 MiB, then one with the rest
    next.greet();
    await waitFor(() => next.commits.length === 2 && next.commits[1]!.putBytesBefore === data.length, 30_000, 'two commit groups at the next hop');
    expect(next.commits[0]!.putBytesBefore).toBeLessThan(data.length);

    // the next hop answers the second commit first ...
    next.answer(1);
    await new Promise((r) => setTimeout(r, 500));
    // ... and the file still reads back as written, from the first hop's spool
    expect((await client.stat(host, '/out.dat')).size).toBe(data.length);
    const back: Buffer[] = [];
    for (let off = 0; off < data.length; off += 4 * chunk) back.push(await client.get(host, '/out.dat', off, 4 * chunk));
    const read = Buffer.concat(back);
    expect(read.length).toBe(data.length);
    expect(read.equals(data), 'the bytes read back are the bytes written').toBe(true);

    // once the first commit is answered too, everything leaves the spool
    next.answerAll();
    await waitFor(async () => ((await client.status()) as { spool: { pendingOps: number } }).spool.pendingOps === 0, 10_000, 'the spool to empty');
  });
});

import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { encodeFrameBuffer, Frame, FrameDecoder } from '../../src/protocol/frame.js';
import { Message, PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * A scripted next hop: answers hello and bulk frames at once, and holds every
 * commit until told. It stands for a destination whose fsync (or whose link's
 * return trip) is slow, and records the puts it is sent.
 */
class SlowCommitHop {
  readonly puts: string[] = [];
  private heldCommits: { socket: net.Socket; id: number }[] = [];
  private server = net.createServer((socket) => {
    const send = (id: number, msg: Message) => socket.write(encodeFrameBuffer(id, msg));
    const decoder = new FrameDecoder(({ id, msg }: Frame) => {
      if (msg.type === 'hello') send(id, { type: 'helloReply', name: this.address, version: PROTOCOL_VERSION, maxFrame: 16 * 1024 * 1024 + 4096, challenge: Buffer.alloc(0) });
      else if (msg.type === 'bulk') {
        for (const op of msg.ops) if (op.type === 'put') this.puts.push(op.path);
        send(id, { type: 'bulkReply', errors: [] });
      } else if (msg.type === 'commit') this.heldCommits.push({ socket, id });
      else send(id, { type: 'ok' });
    });
    socket.on('data', (d) => decoder.push(d));
    socket.on('error', () => undefined);
  });
  address = '';

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.address = `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  get commitsHeld(): number {
    return this.heldCommits.length;
  }

  releaseCommits(): void {
    for (const c of this.heldCommits.splice(0)) c.socket.write(encodeFrameBuffer(c.id, { type: 'ok' }));
  }

  close(): void {
    this.server.close();
    for (const c of this.heldCommits) c.socket.destroy();
  }
}

describe('the mover while a commit is outstanding', () => {
  // A program writes one file, computes, writes the next: each file's data must leave as
  // soon as it is spooled, not after the next hop answered the commit of the one before.
  it('sends ops accepted after a group was closed without waiting for that group\'s commit', async () => {
    const dir = await tempDir();
    const next = new SlowCommitHop();
    await next.listen();
    onTestFinished(() => next.close());
    const host = 'far.example:9094';
    const hop = await startRelay(dir, 'hop', { routes: [`${host}=${next.address}`] });
    const client = await RelayClient.connect(hop.address);
    onTestFinished(() => client.destroy());

    await client.put(host, '/out-0.dat', 0, Buffer.alloc(64 * 1024, 1));
    await client.commit();
    await waitFor(() => next.puts.includes('/out-0.dat') && next.commitsHeld > 0, 10_000, 'first file and its commit at the next hop');

    await client.put(host, '/out-1.dat', 0, Buffer.alloc(64 * 1024, 2));
    await client.commit();
    // the first commit is still unanswered: the second file must reach the next hop anyway
    await waitFor(() => next.puts.includes('/out-1.dat'), 5_000, 'second file sent while the first commit is held');
    expect(next.commitsHeld).toBeGreaterThan(0);
    next.releaseCommits();
  });
});

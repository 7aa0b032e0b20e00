import net from 'node:net';
import { onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { encodeFrameBuffer, Frame, FrameDecoder } from '../../src/protocol/frame.js';
import { Message, PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { RelayProcess, startRelay, tempDir } from './relay-process.js';

export interface ScriptedNextHopOptions {
  /** Hold the answers to hello until `greet` (so a mover finds everything spooled once connected). */
  holdHellos?: boolean;
}

/** A commit the next hop received, and how many put bytes had arrived before it. */
export interface HeldCommit {
  socket: net.Socket;
  id: number;
  putBytesBefore: number;
  answered: boolean;
}

/**
 * A scripted next hop: answers bulk frames at once and holds every commit until the
 * test answers it, in whatever order it likes. It stands for a destination whose
 * fsync (or whose link's return trip) is slow. Hellos are answered at once, or held
 * until `greet` with `holdHellos`. It records the paths and bytes of the puts it is
 * sent and, for each commit, how many put bytes had arrived before it. Get and stat
 * find nothing here (NOT_FOUND); everything else is answered ok.
 */
export class ScriptedNextHop {
  /** Paths of the puts received, in order. */
  readonly puts: string[] = [];
  /** Bytes of the puts received so far. */
  putBytes = 0;
  readonly commits: HeldCommit[] = [];
  address = '';
  private answering = false;
  private greeting: boolean;
  private heldHellos: (() => void)[] = [];
  private sockets = new Set<net.Socket>();
  private server = net.createServer((socket) => {
    this.sockets.add(socket);
    const send = (id: number, msg: Message) => socket.write(encodeFrameBuffer(id, msg));
    const decoder = new FrameDecoder(({ id, msg }: Frame) => {
      if (msg.type === 'hello') {
        const greet = () => send(id, { type: 'helloReply', name: this.address, version: PROTOCOL_VERSION, maxFrame: 16 * 1024 * 1024 + 4096, challenge: Buffer.alloc(0) });
        if (this.greeting) greet();
        else this.heldHellos.push(greet);
      } else if (msg.type === 'bulk') {
        for (const op of msg.ops) {
          if (op.type !== 'put') continue;
          this.puts.push(op.path);
          this.putBytes += op.data.length;
        }
        send(id, { type: 'bulkReply', errors: [] });
      } else if (msg.type === 'commit') {
        this.commits.push({ socket, id, putBytesBefore: this.putBytes, answered: false });
        if (this.answering) this.answer(this.commits.length - 1);
      } else if (msg.type === 'get' || msg.type === 'stat') send(id, { type: 'error', code: 'NOT_FOUND', message: 'no such file here' });
      else send(id, { type: 'ok' });
    }, 64 * 1024 * 1024);
    socket.on('data', (d) => decoder.push(d));
    socket.on('error', () => undefined);
  });

  constructor(options: ScriptedNextHopOptions = {}) {
    this.greeting = !options.holdHellos;
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.address = `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** How many commits are held, not answered yet. */
  get commitsHeld(): number {
    return this.commits.filter((c) => !c.answered).length;
  }

  /** Answers the hellos held so far, and from now on every hello at once. */
  greet(): void {
    this.greeting = true;
    for (const g of this.heldHellos.splice(0)) g();
  }

  /** Answers the commits held so far; later ones are held again. */
  releaseCommits(): void {
    this.commits.forEach((c, i) => c.answered || this.answer(i));
  }

  /** Answers the commits held so far, and from now on every commit as it comes. */
  answerAll(): void {
    this.answering = true;
    this.releaseCommits();
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

/**
 * A first hop whose route for `host` leads to `next`, and a client connected to it.
 * Starts `next` listening; `next`, the relay and the client are closed when the test finishes.
 */
export async function firstHopBefore(next: ScriptedNextHop): Promise<{ host: string; hop: RelayProcess; client: RelayClient }> {
  const dir = await tempDir();
  await next.listen();
  onTestFinished(() => next.close());
  const host = 'far.example:9094';
  const hop = await startRelay(dir, 'hop', { routes: [`${host}=${next.address}`] });
  const client = await RelayClient.connect(hop.address);
  onTestFinished(() => client.destroy());
  return { host, hop, client };
}

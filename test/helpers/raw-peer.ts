import net from 'node:net';
import { expect } from 'vitest';
import { encodeFrameBuffer, Frame, FrameDecoder } from '../../src/protocol/frame.js';
import { Message, PROTOCOL_VERSION } from '../../src/protocol/messages.js';

/** A scripted peer on a raw socket: writes whatever bytes it is given and records the frames it gets back. */
export class RawPeer {
  readonly frames: Frame[] = [];
  /** Set if the relay's own replies fail to decode: that would be a relay bug. */
  replyError: unknown;
  closed = false;
  lastActivity = Date.now();
  private wake = new Set<() => void>();

  private constructor(readonly socket: net.Socket) {
    const decoder = new FrameDecoder((f) => this.frames.push(f));
    socket.on('data', (chunk) => {
      this.lastActivity = Date.now();
      try {
        decoder.push(chunk);
      } catch (err) {
        this.replyError = err;
      }
      this.notify();
    });
    socket.on('error', () => undefined); // resets are expected when the relay hangs up
    socket.on('close', () => {
      this.closed = true;
      this.notify();
    });
  }

  static connect(address: string): Promise<RawPeer> {
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.removeListener('error', reject);
        s.setNoDelay(true);
        resolve(new RawPeer(s));
      });
      s.once('error', reject);
    });
  }

  private notify(): void {
    for (const w of this.wake) w();
  }

  send(...bufs: Buffer[]): void {
    for (const b of bufs) if (!this.socket.destroyed) this.socket.write(b);
  }

  request(id: number, msg: Message): void {
    this.send(encodeFrameBuffer(id, msg));
  }

  /** Resolves with check()'s first defined result; rejects after timeoutMs. */
  async until<T>(what: string, check: () => T | undefined, timeoutMs = 5000, pollMs = 100): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; frames so far: ${JSON.stringify(this.frames.map((f) => ({ id: f.id, type: f.msg.type, code: (f.msg as { code?: string }).code })))}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.wake.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, pollMs));
        this.wake.add(done);
      });
    }
  }

  /** The reply to request `id`. */
  reply(id: number, timeoutMs?: number): Promise<Message> {
    return this.until(`a reply to request ${id}`, () => this.frames.find((f) => f.id === id)?.msg, timeoutMs);
  }

  /** The relay's connection-level error frame (id 0: not about any one request). */
  connectionError(): Promise<Message> {
    return this.reply(0);
  }

  async hello(id = 1, clientId = ''): Promise<void> {
    this.request(id, { type: 'hello', version: PROTOCOL_VERSION, clientId });
    expect((await this.reply(id)).type).toBe('helloReply');
  }

  waitClosed(timeoutMs = 5000): Promise<true> {
    return this.until('the relay to close the connection', () => (this.closed ? true : undefined), timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

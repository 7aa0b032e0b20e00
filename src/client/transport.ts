import net from 'node:net';
import { KangarooError } from '../errors.js';
import { encodeFrame, Frame, FrameDecoder } from '../protocol/frame.js';
import { Message } from '../protocol/messages.js';
import { readIntoBuffers } from './socket-reads.js';

/**
 * What carries frames between a client and a relay. Both ends speak frames (an
 * id and a message), never bytes: over a socket the frames are encoded and
 * decoded (SocketTransport), and between a mount and the relay embedded in the
 * same process they are handed over as objects (in-process-transport.ts).
 */
export interface TransportEvents {
  frame(frame: Frame): void;
  /** Bytes that are not a frame arrived; nothing more is taken from this peer. */
  malformed(err: KangarooError): void;
  /** What was sent has been taken by the peer: a sender that waited may go on. */
  drain(): void;
  /** The connection is gone, `err` when it failed. Called once. */
  close(err?: Error): void;
}

export interface FrameTransport {
  /** host:port of the peer (for logs and the failure log). */
  readonly remote: string;
  listen(events: TransportEvents): void;
  /**
   * Sends one frame. `sent` is called once the transport no longer needs the
   * message's buffers. Returns false when the peer has a backlog: 'drain' follows.
   */
  send(id: number, msg: Message, sent?: () => void): boolean;
  /** Bytes sent and not yet taken by the peer. */
  readonly queuedBytes: number;
  /** Stops taking frames from the peer (flow control): the peer's sends back up. */
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  /** Closes once what was sent has gone. */
  end(): void;
  destroy(): void;
  readonly destroyed: boolean;
}

/** Frames over TCP: encoded with their length and checksum, decoded as they arrive. */
export class SocketTransport implements FrameTransport {
  readonly remote: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly maxFrame: number,
    remote?: string,
  ) {
    this.remote = remote ?? `${socket.remoteAddress}:${socket.remotePort}`;
  }

  listen(events: TransportEvents): void {
    const decoder = new FrameDecoder((f) => events.frame(f), this.maxFrame);
    let failure: Error | undefined;
    const take = (bytes: () => void) => {
      try {
        bytes();
      } catch (err) {
        events.malformed(KangarooError.from(err));
      }
    };
    // large frames are read straight into their own buffers where Node allows it (socket-reads.ts)
    const push = (chunk: Buffer) => take(() => decoder.push(chunk));
    const direct = readIntoBuffers(this.socket, () => decoder.readBuffer(), (n) => take(() => decoder.received(n)), push);
    if (direct) this.socket.resume();
    else this.socket.on('data', push);
    this.socket.on('drain', () => events.drain());
    this.socket.on('error', (err) => (failure ??= err));
    this.socket.on('close', () => events.close(failure));
  }

  send(id: number, msg: Message, sent?: () => void): boolean {
    const chunks = encodeFrame(id, msg);
    let ok = true;
    this.socket.cork();
    // the last chunk's callback comes once every chunk is with the kernel (or the socket is gone)
    chunks.forEach((c, i) => (ok = this.socket.write(c, i === chunks.length - 1 ? sent : undefined)));
    this.socket.uncork();
    return ok;
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  get paused(): boolean {
    return this.socket.isPaused();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }
}

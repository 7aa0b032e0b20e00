import { decodeFrame, encodeFrameBuffer, Frame } from '../protocol/frame.js';
import { Message, OrderedOp, PutOp } from '../protocol/messages.js';
import { crc32 } from '../util/crc32.js';
import { fitsPutBuffer, takePutBuffer } from '../util/put-buffers.js';
import { FrameTransport, TransportEvents } from './transport.js';

/**
 * Two ends of a connection inside one process: a mount and the relay it embeds.
 * Frames are handed over as objects, so the bytes a program writes are copied
 * once on their way into the spool, instead of into a socket, out of it and into
 * a frame, with a checksum on each side (the first hop's largest costs after the
 * spool's own write, measured with perf).
 *
 * The semantics are those of a socket: frames arrive in order on a later turn of
 * the event loop, a receiver that pauses makes its sender's backlog grow until
 * the sender waits for 'drain', and the sender may reuse its buffers as soon as
 * `sent` is called (the data of puts, buffer writes and read replies is copied,
 * the receiver may keep it). Every other message goes through the wire encoding,
 * so it is checked and normalised exactly as one from a socket.
 */
export function inProcessPair(clientName: string, relayName: string): [client: FrameTransport, relay: FrameTransport] {
  const client = new InProcessEnd(relayName);
  const relay = new InProcessEnd(clientName);
  client.peer = relay;
  relay.peer = client;
  return [client, relay];
}

/** A sender whose peer holds this much it has not taken is told to wait ('drain' follows). */
const HIGH_WATER = 1024 * 1024;
/** Counted per frame besides its data, so a flood of small frames is bounded too. */
const FRAME_OVERHEAD = 256;

class InProcessEnd implements FrameTransport {
  peer!: InProcessEnd;
  private events: TransportEvents | undefined;
  /** Frames the peer sent to this end, not yet handed to `events.frame`. */
  private inbox: { frame: Frame; bytes: number }[] = [];
  private inboxBytes = 0;
  private scheduled = false;
  private isPaused = false;
  private closed = false;
  private ending = false;
  /** A send of this end returned false: 'drain' is owed once the peer has taken its inbox. */
  private owedDrain = false;

  constructor(readonly remote: string) {}

  listen(events: TransportEvents): void {
    this.events = events;
    if (this.closed) setImmediate(() => events.close());
    else this.schedule();
  }

  send(id: number, msg: Message, sent?: () => void): boolean {
    if (this.closed || this.ending) {
      sent?.();
      return true;
    }
    const { frame, bytes } = handOver(id, msg);
    sent?.();
    this.peer.take(frame, bytes);
    if (this.peer.inboxBytes < HIGH_WATER) return true;
    this.owedDrain = true;
    return false;
  }

  get queuedBytes(): number {
    return this.peer.inboxBytes;
  }

  pause(): void {
    this.isPaused = true;
  }

  resume(): void {
    this.isPaused = false;
    this.schedule();
  }

  get paused(): boolean {
    return this.isPaused;
  }

  end(): void {
    this.ending = true;
    if (this.peer.inbox.length === 0) this.closeBoth();
  }

  destroy(): void {
    this.closeBoth();
  }

  get destroyed(): boolean {
    return this.closed;
  }

  private take(frame: Frame, bytes: number): void {
    if (this.closed) return;
    this.inbox.push({ frame, bytes });
    this.inboxBytes += bytes;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.isPaused || this.closed || !this.events) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    while (!this.isPaused && !this.closed && this.inbox.length > 0) {
      const { frame, bytes } = this.inbox.shift()!;
      this.inboxBytes -= bytes;
      this.events!.frame(frame);
    }
    if (this.closed || this.inbox.length > 0) return;
    if (this.peer.owedDrain) {
      this.peer.owedDrain = false;
      this.peer.events?.drain();
    }
    if (this.peer.ending) this.closeBoth();
  }

  private closeBoth(): void {
    for (const end of [this, this.peer]) {
      if (end.closed) continue;
      end.closed = true;
      end.inbox = [];
      end.inboxBytes = 0;
      const events = end.events;
      if (events) setImmediate(() => events.close());
    }
  }
}

/** The frame as the receiver gets it, and what it counts for flow control. */
function handOver(id: number, msg: Message): { frame: Frame; bytes: number } {
  switch (msg.type) {
    case 'put': {
      const op = entering(msg);
      return { frame: { id, msg: op }, bytes: FRAME_OVERHEAD + op.data.length };
    }
    case 'bulk': {
      const ops = msg.ops.map((op: OrderedOp) => (op.type === 'put' ? entering(op) : { ...op }));
      const bytes = ops.reduce((n, op) => n + FRAME_OVERHEAD + (op.type === 'put' ? op.data.length : 0), FRAME_OVERHEAD);
      return { frame: { id, msg: { type: 'bulk', ops } }, bytes };
    }
    case 'bufWrite':
    case 'data': {
      const data = Buffer.from(msg.data);
      return { frame: { id, msg: { ...msg, data } }, bytes: FRAME_OVERHEAD + data.length };
    }
    default: {
      const wire = encodeFrameBuffer(id, msg);
      return { frame: decodeFrame(wire), bytes: FRAME_OVERHEAD + wire.length };
    }
  }
}

/**
 * A put's data enters the system here: a copy the relay may keep (the sender
 * reuses its buffer), with the checksum a socket's encoder would have taken.
 */
function entering(op: PutOp): PutOp {
  const n = op.data.length;
  // large copies come from the put buffers (see put-buffers.ts: fresh ones cost as much in GC as the copy)
  const pooled = fitsPutBuffer(n) ? takePutBuffer() : undefined;
  let data: Buffer;
  if (pooled) {
    op.data.copy(pooled.buffer);
    data = pooled.buffer.subarray(0, n);
  } else {
    data = Buffer.from(op.data);
  }
  const crc = crc32(data);
  return { ...op, data, sum: op.sum ?? crc, dataCrc: crc, recycle: pooled?.recycle };
}

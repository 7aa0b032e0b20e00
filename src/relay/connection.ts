import type { FrameTransport } from '../client/transport.js';
import { KangarooError } from '../errors.js';
import { Frame } from '../protocol/frame.js';
import { BulkError, isOrderedOp, Message, OrderedOp, PROTOCOL_VERSION, Reply } from '../protocol/messages.js';
import { BufferSession } from './buffer-session.js';
import type { Relay } from './relay.js';

/**
 * One client connection to a relay. Frames are handled strictly in arrival
 * order for everything that changes state (ordered ops, commit, push), so a
 * commit covers every op before it and a get sees every put before it; answers
 * that take time (get, push, a commit's fsync) complete in the background while
 * later frames are taken. Taking frames from the peer pauses while the spool is full
 * or too much is queued: that is how a writer is slowed instead of refused.
 *
 * After an ordered op fails, every later ordered op on this connection is
 * refused with ABORTED, so a sender never sees a later op applied before an
 * earlier one; it reconnects and resends.
 */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

export class Connection {
  clientId = '';
  private queue: { frame: Frame; bytes: number }[] = [];
  private queuedBytes = 0;
  private processing = false;
  private poisoned: KangarooError | undefined;
  private closed = false;
  private greeted = false;
  /** Set when the relay needs a secret: the challenge sent, until the client answers it. */
  private challenge: Buffer | undefined;
  readonly abort = new AbortController();
  readonly remote: string;
  private buffers: BufferSession;
  /** Reply bytes promised (gets in progress) and not yet written: bounds what a peer that never reads can cost. */
  private reservedReplyBytes = 0;
  /** Buffer writes taken but not yet in their buffer (a writer far ahead waits there): they count too. */
  private pendingBufWriteBytes = 0;
  private roomWaiters: (() => void)[] = [];

  constructor(
    private readonly transport: FrameTransport,
    private readonly relay: Relay,
  ) {
    this.remote = transport.remote;
    this.buffers = new BufferSession(relay, this);
    transport.listen({
      frame: (f) => this.enqueue(f),
      malformed: (e) => {
        relay.log.warn(`closing connection from ${this.remote}: ${e.code}: ${e.message}`);
        this.sendNow(0, { type: 'error', code: e.code, message: e.message });
        this.close();
      },
      drain: () => this.wakeRoom(),
      close: () => this.close(),
    });
  }

  private maybeResume(): void {
    if (this.queuedBytes <= MAX_QUEUED_BYTES / 2 && this.pendingBufWriteBytes <= MAX_QUEUED_BYTES / 2 && this.transport.paused) this.transport.resume();
  }

  private wakeRoom(): void {
    const w = this.roomWaiters;
    this.roomWaiters = [];
    for (const f of w) f();
  }

  /** Waits while replies owed to this peer (queued or being made) exceed the limit. */
  private async replyRoom(): Promise<void> {
    while (!this.closed && this.reservedReplyBytes + this.transport.queuedBytes > MAX_QUEUED_BYTES) {
      await new Promise<void>((r) => this.roomWaiters.push(r));
    }
  }

  private enqueue(frame: Frame): void {
    let bytes = 256;
    const ops = frame.msg.type === 'bulk' ? frame.msg.ops : isOrderedOp(frame.msg) ? [frame.msg] : [];
    for (const op of ops) {
      if (op.type !== 'put') continue;
      bytes += op.data.length;
      // a small slice would pin a whole socket chunk in the spool's memory tier (pooled data goes back to its pool)
      if (!op.recycle && op.data.buffer.byteLength > op.data.length * 2) op.data = Buffer.from(op.data);
    }
    this.queue.push({ frame, bytes });
    this.queuedBytes += bytes;
    if (this.queuedBytes > MAX_QUEUED_BYTES || this.pendingBufWriteBytes > MAX_QUEUED_BYTES) this.transport.pause();
    if (!this.processing) void this.process();
  }

  private async process(): Promise<void> {
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        await this.replyRoom();
        if (this.closed) break;
        const { frame, bytes } = this.queue.shift()!;
        try {
          await this.handle(frame);
        } catch (err) {
          const e = KangarooError.from(err);
          this.reply(frame.id, { type: 'error', code: e.code, message: e.message });
        }
        this.queuedBytes -= bytes;
        this.maybeResume();
      }
    } finally {
      this.processing = false;
    }
  }

  private async handle({ id, msg }: Frame): Promise<void> {
    if (!this.greeted && msg.type !== 'hello') {
      throw new KangarooError('BAD_FRAME', 'the first frame must be hello');
    }
    if (this.challenge && msg.type !== 'auth') {
      this.refuse(id, 'this relay requires its shared secret: answer the challenge first (--secret-file)');
      return;
    }
    if (isOrderedOp(msg)) {
      const err = await this.applyOrdered(msg);
      // put has no reply unless refused; metadata ops are acknowledged
      if (err) this.reply(id, { type: 'error', code: err.code, message: err.message });
      else if (msg.type !== 'put') this.reply(id, { type: 'ok' });
      return;
    }
    switch (msg.type) {
      case 'hello':
        if (msg.version !== PROTOCOL_VERSION) {
          throw new KangarooError('BAD_FRAME', `protocol version ${msg.version} is not supported (this relay speaks ${PROTOCOL_VERSION})`);
        }
        this.greeted = true;
        this.clientId = msg.clientId.slice(0, 200);
        if (this.relay.access.requiresSecret) this.challenge = this.relay.access.challenge();
        else if (this.clientId) this.relay.claimClientId(this);
        this.reply(id, {
          type: 'helloReply',
          name: this.relay.name,
          version: PROTOCOL_VERSION,
          maxFrame: this.relay.maxFrame,
          challenge: this.challenge ?? Buffer.alloc(0),
        });
        return;
      case 'auth':
        if (!this.challenge) throw new KangarooError('BAD_FRAME', 'no challenge to answer');
        if (!this.relay.access.verify(this.challenge, msg.response)) {
          this.refuse(id, 'wrong shared secret');
          return;
        }
        this.challenge = undefined;
        if (this.clientId) this.relay.claimClientId(this);
        this.reply(id, { type: 'ok' });
        return;
      case 'bulk': {
        const errors: BulkError[] = [];
        for (let i = 0; i < msg.ops.length; i++) {
          const err = await this.applyOrdered(msg.ops[i]!);
          if (err) errors.push({ index: i, code: err.code, message: err.message });
        }
        this.reply(id, { type: 'bulkReply', errors });
        return;
      }
      case 'commit':
        this.background(id, async () => {
          await this.relay.commit();
          return { type: 'ok' };
        });
        return;
      case 'push': {
        const { host, path } = msg;
        this.background(id, async () => {
          await this.relay.push(host, path, this.abort.signal);
          return { type: 'ok' };
        });
        return;
      }
      case 'get': {
        const { host, path, offset, length } = msg;
        if (length > this.relay.maxFrame - 1024) throw new KangarooError('BAD_ARGUMENT', `get of ${length} bytes exceeds the frame limit`);
        const pending = this.relay.get(host, path, offset, length);
        this.background(id, async () => ({ type: 'data', data: await pending }), length);
        return;
      }
      case 'stat': {
        const pending = this.relay.stat(msg.host, msg.path);
        this.background(id, async () => ({ type: 'statReply', info: await pending }));
        return;
      }
      case 'list': {
        const pending = this.relay.list(msg.host, msg.path);
        this.background(id, async () => ({ type: 'listReply', entries: await pending }));
        return;
      }
      case 'status':
        this.reply(id, { type: 'json', value: this.relay.status() });
        return;
      case 'log': {
        const limit = Math.min(msg.limit || 1000, 10_000);
        this.background(id, async () => ({ type: 'json', value: await this.relay.failures.list(limit) }));
        return;
      }
      case 'retry': {
        const { host, path } = msg;
        this.background(id, async () => ({ type: 'json', value: { requeued: await this.relay.retry(host, path) } }));
        return;
      }
      case 'bufOpen': {
        const { host, name, role } = msg;
        this.background(id, () => this.buffers.open(host, name, role));
        return;
      }
      case 'bufWrite': {
        const bytes = msg.data.length;
        this.pendingBufWriteBytes += bytes;
        if (this.pendingBufWriteBytes > MAX_QUEUED_BYTES) this.transport.pause();
        const pending = this.buffers.write(msg.handle, msg.offset, msg.data);
        this.background(id, async () => {
          try {
            await pending;
          } finally {
            this.pendingBufWriteBytes -= bytes;
            this.maybeResume();
          }
          return { type: 'ok' };
        });
        return;
      }
      case 'bufRead': {
        const { handle, offset, length } = msg;
        if (length > this.relay.maxFrame - 1024) throw new KangarooError('BAD_ARGUMENT', `read of ${length} bytes exceeds the frame limit`);
        this.background(id, async () => ({ type: 'data', data: await this.buffers.read(handle, offset, length) }), length);
        return;
      }
      case 'bufClose': {
        const { handle } = msg;
        this.background(id, async () => {
          await this.buffers.close(handle);
          return { type: 'ok' };
        });
        return;
      }
      case 'bufStat': {
        const { host, name } = msg;
        this.background(id, () => this.buffers.stat(host, name));
        return;
      }
      default:
        throw new KangarooError('UNKNOWN_OP', `a relay does not accept "${msg.type}" frames`);
    }
  }

  /** Refuses access: a clear error, a record in the failure log, and the connection closed. */
  refuse(id: number, why: string): void {
    this.relay.log.warn(`refused ${this.remote}: ${why}`);
    this.relay.failures.record({ kind: 'access', target: this.remote, code: 'AUTH', class: 'permanent', message: why, action: 'refused' });
    this.sendNow(id, { type: 'error', code: 'AUTH', message: `access refused: ${why}` });
    this.challenge = undefined; // recorded once, here
    this.close();
  }

  /** Applies or spools one op; returns the refusal, if any, instead of throwing. */
  private async applyOrdered(op: OrderedOp): Promise<KangarooError | undefined> {
    if (this.poisoned) return new KangarooError('ABORTED', `skipped: an earlier operation on this connection failed (${this.poisoned.code})`);
    try {
      await this.relay.acceptOp(op, this.clientId);
      return undefined;
    } catch (err) {
      const e = KangarooError.from(err);
      if (this.clientId) this.poisoned = e; // only senders that resend (movers) need the strict order
      return e;
    }
  }

  /** Runs a slow answer without holding up later frames. */
  private background(id: number, work: () => Promise<Reply>, replyBytes = 0): void {
    this.reservedReplyBytes += replyBytes;
    const settle = () => {
      this.reservedReplyBytes -= replyBytes;
      this.wakeRoom();
    };
    work().then(
      (r) => {
        this.reply(id, r);
        settle();
      },
      (err) => {
        const e = KangarooError.from(err);
        this.reply(id, { type: 'error', code: e.code, message: e.message });
        settle();
      },
    );
  }

  private reply(id: number, msg: Message): void {
    this.sendNow(id, msg);
  }

  private sendNow(id: number, msg: Message): void {
    if (this.transport.destroyed) return;
    try {
      this.transport.send(id, msg);
    } catch (err) {
      this.relay.log.warn(`cannot reply to ${this.remote}: ${(err as Error).message}`);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.queue = [];
    if (this.challenge) {
      const why = 'went away without answering the secret challenge';
      this.relay.failures.record({ kind: 'access', target: this.remote, code: 'AUTH', class: 'permanent', message: why, action: 'refused' });
    }
    this.buffers.end();
    this.wakeRoom();
    this.transport.end();
    setTimeout(() => this.transport.destroy(), 1000).unref();
    this.relay.forget(this);
  }
}

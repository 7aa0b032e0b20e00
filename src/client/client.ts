import net from 'node:net';
import { formatHostPort, parseHostPort } from '../address.js';
import { respond } from '../relay/access.js';
import { KangarooError } from '../errors.js';
import { DEFAULT_MAX_FRAME, Frame } from '../protocol/frame.js';
import { BulkError, DirEntry, FileInfo, NO_MODE, OrderedOp, PROTOCOL_VERSION, Reply, Request } from '../protocol/messages.js';
import { FrameTransport, SocketTransport } from './transport.js';

/**
 * A connection to one relay: the four Kangaroo calls plus the metadata operations.
 * Many requests are in flight at once, matched to replies by id.
 *
 * Ordered operations (put, truncate, mkdir, unlink, rmdir, rename) are queued and
 * sent together in bulk frames (one round trip for many small operations); they
 * resolve once handed to the socket, which is also where flow control from a
 * full spool is felt. A refusal is reported by the next `commit()` or `flush()`.
 */

export interface ClientOptions {
  /** A stable id makes resent ordered ops (same seq) harmless; empty for none. */
  clientId?: string;
  /** Send ordered ops in bulk frames (default) or one frame each, awaiting each reply. */
  batching?: boolean;
  /** Largest bulk frame payload. */
  maxBatchBytes?: number;
  connectTimeoutMs?: number;
  maxFrame?: number;
  /** Bytes queued on the socket before a sender waits (flow control threshold). */
  maxBufferedBytes?: number;
  /** Shared secret, for relays that ask for one (answered by challenge-response). */
  secret?: Buffer;
}

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: KangarooError) => void;
}

export class RelayClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private batch: OrderedOp[] = [];
  private batchBytes = 0;
  private batchTimer: NodeJS.Immediate | undefined;
  private deferred: KangarooError[] = [];
  private inflightBulks = new Set<Promise<void>>();
  private closedError: KangarooError | undefined;
  private drainWaiters: (() => void)[] = [];
  /** Callbacks of putOwned: called once the socket is done with a put's data. */
  private releases = new WeakMap<OrderedOp, () => void>();
  /** Name the relay gave in its hello reply. */
  serverName = '';
  readonly address: string;

  private readonly closedPromise: Promise<void>;

  private constructor(
    private readonly transport: FrameTransport,
    address: string,
    private readonly options: Required<ClientOptions>,
  ) {
    this.address = address;
    let closed!: () => void;
    this.closedPromise = new Promise((resolve) => (closed = resolve));
    transport.listen({
      frame: (f) => this.onFrame(f),
      malformed: (err) => {
        this.fail(KangarooError.from(err, `bad reply from relay ${address}`));
        transport.destroy();
      },
      // 'drain' comes only after a send returned false; waiters queued above the threshold get it
      drain: () => this.drainWaiters.splice(0).forEach((w) => w()),
      close: (err) => {
        this.fail(err ? KangarooError.from(err, `relay ${address}`) : new KangarooError('CONNECTION_LOST', `connection to relay ${address} closed`));
        closed();
      },
    });
  }

  static defaults(options: ClientOptions): Required<ClientOptions> {
    return {
      clientId: '',
      batching: true,
      maxBatchBytes: 1024 * 1024,
      connectTimeoutMs: 10_000,
      maxFrame: DEFAULT_MAX_FRAME,
      maxBufferedBytes: 4 * 1024 * 1024,
      secret: undefined as unknown as Buffer,
      ...options,
    };
  }

  static async connect(address: string, options: ClientOptions = {}): Promise<RelayClient> {
    const hp = parseHostPort(address);
    const opts = RelayClient.defaults(options);
    const name = formatHostPort(hp);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: hp.host, port: hp.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new KangarooError('TIMEOUT', `no answer from relay ${name} within ${opts.connectTimeoutMs} ms`));
      }, opts.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(KangarooError.from(err, `cannot reach relay ${name}`));
      });
    });
    socket.setNoDelay(true);
    return RelayClient.over(new SocketTransport(socket, opts.maxFrame, name), name, opts);
  }

  /**
   * A client on a transport that is already connected (a socket, or a relay in this
   * process: see in-process-transport.ts); says hello and answers the relay's
   * challenge as `connect` does.
   */
  static async over(transport: FrameTransport, name: string, options: ClientOptions = {}): Promise<RelayClient> {
    const opts = RelayClient.defaults(options);
    const client = new RelayClient(transport, name, opts);
    // a peer that accepts the connection and then says nothing must not hold us for ever
    const handshakeTimer = setTimeout(() => {
      client.fail(new KangarooError('TIMEOUT', `relay ${name} accepted the connection but did not answer its hello within ${opts.connectTimeoutMs} ms`));
      transport.destroy();
    }, opts.connectTimeoutMs);
    try {
      const hello = await client.request({ type: 'hello', version: PROTOCOL_VERSION, clientId: opts.clientId });
      if (hello.type === 'helloReply') {
        client.serverName = hello.name;
        if (hello.challenge.length > 0) {
          if (!opts.secret) {
            throw new KangarooError('AUTH', `relay ${name} requires a shared secret (give --secret-file FILE or set KANGAROO_SECRET_FILE)`);
          }
          await client.request({ type: 'auth', response: respond(opts.secret, hello.challenge) });
        }
      }
    } catch (err) {
      client.destroy();
      throw err;
    } finally {
      clearTimeout(handshakeTimer);
    }
    return client;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  private fail(err: KangarooError): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.drainWaiters.splice(0).forEach((w) => w());
  }

  private onFrame({ id, msg }: Frame): void {
    const p = this.pending.get(id);
    if (!p) {
      // An unsolicited error refers to a put (which has no reply): keep it for commit.
      if (msg.type === 'error') this.deferred.push(KangarooError.fromWire(msg.code, msg.message));
      return;
    }
    this.pending.delete(id);
    if (msg.type === 'error') p.reject(KangarooError.fromWire(msg.code, msg.message));
    else p.resolve(msg as Reply);
  }

  /** Writes a frame; resolves when the socket can take more (flow control). */
  private async send(id: number, msg: Request): Promise<void> {
    if (this.closedError) throw this.closedError;
    const ok = this.transport.send(id, msg, this.releasesOf(msg));
    // Wait only once several frames are queued: a writer keeps the socket busy while the
    // relay reads, yet a relay that stops reading (full spool) still stops the writer.
    if (!ok && this.transport.queuedBytes > this.options.maxBufferedBytes) await new Promise<void>((r) => this.drainWaiters.push(r));
    if (this.closedError) throw this.closedError;
  }

  private releasesOf(msg: Request): (() => void) | undefined {
    const ops = msg.type === 'bulk' ? msg.ops : msg.type === 'put' ? [msg] : [];
    const found = ops.map((op) => this.releases.get(op)).filter((r): r is () => void => r !== undefined);
    return found.length === 0 ? undefined : () => found.forEach((r) => r());
  }

  /** Sends a request and resolves with its reply (errors reject with the relay's code). */
  async request(msg: Request): Promise<Reply> {
    if (this.closedError) throw this.closedError;
    const id = this.allocId();
    const reply = new Promise<Reply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    reply.catch(() => undefined); // if sending fails, the caller sees that error instead
    await this.send(id, msg);
    return reply;
  }

  private allocId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffff0 ? 1 : this.nextId + 1;
    return id;
  }

  // ---- ordered operations ----

  /** Queues an ordered op. Resolves when it is handed to the socket, not when applied. */
  async op(op: OrderedOp): Promise<void> {
    if (this.closedError) throw this.closedError;
    if (!this.options.batching) {
      if (op.type === 'put') {
        // put has no reply; a refusal arrives as an unsolicited error
        await this.send(this.allocId(), op);
      } else {
        await this.request(op);
      }
      return;
    }
    this.batch.push(op);
    this.batchBytes += op.type === 'put' ? op.data.length + 64 : 64 + op.path.length;
    if (this.batchBytes >= this.options.maxBatchBytes) {
      await this.sendBatch();
    } else if (!this.batchTimer) {
      this.batchTimer = setImmediate(() => {
        this.batchTimer = undefined;
        void this.sendBatch().catch(() => undefined);
      });
    }
  }

  put(host: string, path: string, offset: number, data: Buffer, seq = 0): Promise<void> {
    return this.op({ type: 'put', seq, host, path, offset, data });
  }

  /**
   * A put whose caller wants its buffer back: `release` is called once the client
   * no longer needs `data` (the kernel has it, or the connection is gone), so the
   * buffer can be reused without a fresh allocation.
   */
  putOwned(host: string, path: string, offset: number, data: Buffer, release: () => void): Promise<void> {
    const op: OrderedOp = { type: 'put', seq: 0, host, path, offset, data };
    this.releases.set(op, release);
    return this.op(op);
  }

  truncate(host: string, path: string, size: number): Promise<void> {
    return this.op({ type: 'truncate', seq: 0, host, path, size });
  }

  mkdir(host: string, path: string, mode = 0o755): Promise<void> {
    return this.op({ type: 'mkdir', seq: 0, host, path, mode });
  }

  unlink(host: string, path: string): Promise<void> {
    return this.op({ type: 'unlink', seq: 0, host, path });
  }

  rmdir(host: string, path: string): Promise<void> {
    return this.op({ type: 'rmdir', seq: 0, host, path });
  }

  setattr(host: string, path: string, attrs: { mode?: number; mtimeMs?: number }): Promise<void> {
    return this.op({ type: 'setattr', seq: 0, host, path, mode: attrs.mode ?? NO_MODE, mtimeMs: Math.max(0, Math.round(attrs.mtimeMs ?? 0)) });
  }

  rename(host: string, path: string, to: string): Promise<void> {
    return this.op({ type: 'rename', seq: 0, host, path, to });
  }

  /**
   * Sends a list of ordered ops as bulk frames and resolves with the per-op
   * errors (indexes into `ops`). Used by the mover, which needs to know which
   * op failed.
   */
  async bulk(ops: OrderedOp[]): Promise<BulkError[]> {
    const reply = await this.request({ type: 'bulk', ops });
    if (reply.type !== 'bulkReply') throw new KangarooError('BAD_FRAME', `unexpected reply ${reply.type} to bulk`);
    return reply.errors;
  }

  private async sendBatch(): Promise<void> {
    if (this.batchTimer) {
      clearImmediate(this.batchTimer);
      this.batchTimer = undefined;
    }
    if (this.batch.length === 0) return;
    const ops = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    if (ops.length === 1 && ops[0]!.type === 'put') {
      await this.send(this.allocId(), ops[0]!);
      return;
    }
    const id = this.allocId();
    const reply = new Promise<Reply>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    reply.catch(() => undefined);
    const tracked: Promise<void> = reply.then(
      (r) => {
        if (r.type === 'bulkReply') {
          for (const e of r.errors) this.deferred.push(KangarooError.fromWire(e.code, `${describe(ops[e.index])}: ${e.message}`));
        }
      },
      (err: KangarooError) => {
        this.deferred.push(err);
      },
    );
    this.inflightBulks.add(tracked);
    void tracked.finally(() => this.inflightBulks.delete(tracked));
    await this.send(id, { type: 'bulk', ops });
  }

  /** Sends everything queued and waits for the relay to accept it; throws the first refusal. */
  async flush(): Promise<void> {
    await this.sendBatch();
    await Promise.all([...this.inflightBulks]);
    this.throwDeferred();
  }

  private throwDeferred(): void {
    if (this.deferred.length === 0) return;
    const errs = this.deferred.splice(0);
    const first = errs[0]!;
    const more = errs.length > 1 ? ` (and ${errs.length - 1} more refused operations)` : '';
    throw new KangarooError(first.code, first.message + more);
  }

  // ---- the blocking calls ----

  /** Resolves once every earlier ordered op of this client is on stable storage at the relay. */
  async commit(): Promise<void> {
    await this.sendBatch();
    await this.request({ type: 'commit' });
    await Promise.all([...this.inflightBulks]);
    this.throwDeferred();
  }

  /** Resolves once every earlier put to this file has reached its destination and is fsync'd there. */
  async push(host: string, path: string): Promise<void> {
    await this.flush();
    await this.request({ type: 'push', host, path });
  }

  /** Reads up to `length` bytes; a shorter result means end of file. */
  async get(host: string, path: string, offset: number, length: number): Promise<Buffer> {
    await this.sendBatch();
    const r = await this.request({ type: 'get', host, path, offset, length });
    if (r.type !== 'data') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to get`);
    return r.data;
  }

  async stat(host: string, path: string): Promise<FileInfo> {
    await this.sendBatch();
    const r = await this.request({ type: 'stat', host, path });
    if (r.type !== 'statReply') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to stat`);
    return r.info;
  }

  async list(host: string, path: string): Promise<DirEntry[]> {
    await this.sendBatch();
    const r = await this.request({ type: 'list', host, path });
    if (r.type !== 'listReply') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to list`);
    return r.entries;
  }

  async status(): Promise<unknown> {
    const r = await this.request({ type: 'status' });
    if (r.type !== 'json') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to status`);
    return r.value;
  }

  /** The relay's failure log, newest last. */
  async failureLog(limit = 1000): Promise<unknown[]> {
    const r = await this.request({ type: 'log', limit });
    if (r.type !== 'json') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to log`);
    return r.value as unknown[];
  }

  /** Re-queues files whose delivery was stopped by a permanent error (path '' for all on host). */
  async retry(host: string, path: string): Promise<number> {
    const r = await this.request({ type: 'retry', host, path });
    if (r.type !== 'json') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to retry`);
    return Number((r.value as { requeued?: number }).requeued ?? 0);
  }

  // ---- grid buffers (pipe mode) ----

  async bufOpen(host: string, name: string, role: 'read' | 'write'): Promise<{ handle: number; size: number }> {
    const r = await this.request({ type: 'bufOpen', host, name, role });
    if (r.type !== 'bufOpened') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to bufOpen`);
    return { handle: r.handle, size: r.size };
  }

  /** Resolves once the buffer took the bytes (a writer far ahead of its readers waits here). */
  async bufWrite(handle: number, offset: number, data: Buffer): Promise<void> {
    await this.request({ type: 'bufWrite', handle, offset, data });
  }

  /** Blocks until bytes exist at `offset`; an empty result is end of file. */
  async bufRead(handle: number, offset: number, length: number): Promise<Buffer> {
    const r = await this.request({ type: 'bufRead', handle, offset, length });
    if (r.type !== 'data') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to bufRead`);
    return r.data;
  }

  async bufClose(handle: number): Promise<void> {
    await this.request({ type: 'bufClose', handle });
  }

  async bufStat(host: string, name: string): Promise<{ exists: boolean; size: number; writer: string }> {
    const r = await this.request({ type: 'bufStat', host, name });
    if (r.type !== 'json') throw new KangarooError('BAD_FRAME', `unexpected reply ${r.type} to bufStat`);
    return r.value as { exists: boolean; size: number; writer: string };
  }

  /** Bytes handed to the socket but not yet sent: what flow control is holding back. */
  get bufferedBytes(): number {
    return this.transport.queuedBytes;
  }

  async close(): Promise<void> {
    if (this.batch.length > 0) await this.sendBatch().catch(() => undefined);
    if (this.closedError) return;
    this.transport.end();
    await Promise.race([this.closedPromise, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]);
    this.transport.destroy();
  }

  destroy(): void {
    this.transport.destroy();
    this.fail(new KangarooError('CLOSED', 'client closed'));
  }
}

function describe(op: OrderedOp | undefined): string {
  if (!op) return 'operation';
  return `${op.type} ${op.host}${op.path}`;
}

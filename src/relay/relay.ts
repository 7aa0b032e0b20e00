import crypto from 'node:crypto';
import { once } from 'node:events';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { canonicalHost, formatHostPort, normalizePath, parseHostPort } from '../address.js';
import { KangarooError } from '../errors.js';
import { Backoff } from '../mover/backoff.js';
import { FailureLog } from '../mover/failure-log.js';
import { DEFAULT_HANG, HangOptions } from '../mover/hang-detector.js';
import { Mover } from '../mover/mover.js';
import { DEFAULT_RETRY, parseRetryPolicy, RetryPolicy } from '../mover/retry-policy.js';
import { RateLimiter } from '../mover/rate-limiter.js';
import { DEFAULT_MAX_FRAME, encodeFrameBuffer } from '../protocol/frame.js';
import { DirEntry, FileInfo, OrderedOp, putIntact, Request } from '../protocol/messages.js';
import { DEFAULT_MAX_SPOOL_BYTES, Spool } from '../spool/spool.js';
import { createLogger, Logger } from '../util/log.js';
import { AccessPolicy } from './access.js';
import { inProcessPair } from '../client/in-process-transport.js';
import { FrameTransport, SocketTransport } from '../client/transport.js';
import { Connection } from './connection.js';
import { ExportRoot } from './export.js';
import { Forwarder } from './forwarder.js';
import { listThrough, readThrough, statThrough, Upstream } from './read-through.js';
import { RoutingTable } from './routing.js';
import { BufferLimits, DEFAULT_BUFFER_LIMITS } from '../buffer/grid-buffer.js';
import { BufferRegistry } from '../buffer/registry.js';
import { buildStatus, RelayStatus } from './status.js';
import { Watermarks } from './watermarks.js';

export interface RelayOptions {
  /** host:port to listen on; port 0 picks a free one. */
  listen?: string;
  /** The host name this relay answers to (default: its listen address). */
  name?: string;
  spoolDir: string;
  exportDir?: string;
  routes?: string[];
  bwlimit?: number;
  maxSpoolBytes?: number;
  maxFrame?: number;
  /** Grid buffer limits (pipe mode); unset fields take the defaults. */
  buffers?: Partial<BufferLimits>;
  maxBuffers?: number;
  /** Shared secret: clients prove it, and this relay proves it to its next hops. */
  secret?: Buffer;
  /** Address ranges (CIDR) allowed to connect. */
  allow?: string[];
  /** Most client connections at once; more are refused with a clear error. */
  maxConnections?: number;
  /** Retry policies per next hop (`NAME=initial=..,max=..,deadline=..,pause=HH:MM-HH:MM`, NAME may be `*`). */
  retry?: string[];
  /** Hung-transfer detection. */
  hang?: Partial<HangOptions>;
  log?: Logger;
}

/**
 * The relay daemon: one TCP listener, one spool. Ops for its own host are applied
 * under the export root; ops for any other host are spooled and moved on, through
 * the routing table, by one mover per next hop.
 */
export class Relay {
  name = '';
  readonly maxFrame: number;
  readonly log: Logger;
  readonly startedAt = Date.now();
  private server: net.Server;
  private ownNames = new Set<string>();
  private routing: RoutingTable;
  private movers = new Map<string, Mover>();
  private forwarder: Forwarder;
  /** Directories last seen on hosts this relay forwards to (see stat). */
  private knownDirs = new LRUCache<string, FileInfo>({ max: 10_000 });
  private connections = new Set<Connection>();
  /** Of those, the ones made in this process (a mount's link to the relay it embeds). */
  private inProcess = new WeakSet<Connection>();
  private rateLimiter: RateLimiter | undefined;
  private relayId = '';
  private listenAddress = '';
  spool!: Spool;
  buffers!: BufferRegistry;
  failures!: FailureLog;
  exportRoot: ExportRoot | undefined;
  private watermarks: Watermarks | undefined;
  /** Per client id, the last resendable op applied here (see applyOnce). */
  private applying = new Map<string, Promise<void>>();
  /** The newest commit and whether it has answered (see commit). */
  private lastCommit: { done: Promise<void>; settled: boolean } | undefined;
  private closing = false;
  /** The spool's failure last reported (see commitNow). */
  private spoolError: unknown;
  readonly access: AccessPolicy;
  private retryPolicies = new Map<string, RetryPolicy>();

  private constructor(private readonly options: RelayOptions) {
    this.access = new AccessPolicy({ secret: options.secret, allow: options.allow });
    this.forwarder = new Forwarder(options.secret);
    for (const spec of options.retry ?? []) {
      const { name, policy } = parseRetryPolicy(spec);
      this.retryPolicies.set(name === '*' ? '*' : canonicalHost(name), policy);
    }
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    this.log = options.log ?? createLogger('relay');
    this.routing = new RoutingTable(options.routes ?? []);
    if (options.bwlimit) this.rateLimiter = new RateLimiter(options.bwlimit);
    this.server = net.createServer((socket) => this.onConnection(socket));
  }

  static async start(options: RelayOptions): Promise<Relay> {
    const relay = new Relay(options);
    await relay.init();
    return relay;
  }

  private async init(): Promise<void> {
    const o = this.options;
    await fsp.mkdir(o.spoolDir, { recursive: true });
    this.relayId = await loadOrCreateId(path.join(o.spoolDir, 'relay-id'));
    this.buffers = new BufferRegistry(
      path.join(o.spoolDir, 'buffers'),
      { ...DEFAULT_BUFFER_LIMITS, ...o.buffers },
      this.log,
      o.maxBuffers,
    );
    await fsp.rm(path.join(o.spoolDir, 'buffers'), { recursive: true, force: true }); // buffers do not outlive a restart
    this.spool = await Spool.open({ dir: o.spoolDir, maxBytes: o.maxSpoolBytes ?? DEFAULT_MAX_SPOOL_BYTES });
    this.failures = new FailureLog(path.join(o.spoolDir, 'failures.log'));
    await this.failures.load();
    const rec = this.spool.recovery!;
    if (rec.tornTailBytes > 0) this.log.warn(`spool recovery dropped a torn tail of ${rec.tornTailBytes} bytes (uncommitted)`);
    for (const c of rec.corrupted) {
      const message = `corrupted record in segment ${c.segment} at ${c.offset} (${c.skippedBytes} bytes skipped, not delivered)`;
      this.log.error(`spool recovery: ${message}`);
      this.failures.record({ kind: 'spool', target: o.spoolDir, code: 'IO', class: 'permanent', message, action: 'skipped: never delivered as garbage' });
    }
    if (this.spool.opCount > 0) this.log.info(`spool recovered ${this.spool.opCount} undelivered operations`);
    if (o.exportDir) {
      this.exportRoot = new ExportRoot(o.exportDir);
      await this.exportRoot.init();
      this.watermarks = new Watermarks(path.join(o.spoolDir, 'applied-watermarks.json'));
      await this.watermarks.load();
    }
    const listen = parseHostPort(o.listen ?? '127.0.0.1:9094');
    this.access.checkListen(listen.host);
    this.server.listen(listen.port, listen.host);
    await Promise.race([
      once(this.server, 'listening'),
      once(this.server, 'error').then(([err]) => {
        throw KangarooError.from(err, `cannot listen on ${formatHostPort(listen)}`);
      }),
    ]);
    const addr = this.server.address() as net.AddressInfo;
    this.listenAddress = formatHostPort({ host: listen.host, port: addr.port });
    this.name = o.name ? canonicalHost(o.name.includes(':') ? o.name : `${o.name}:${addr.port}`) : this.listenAddress;
    this.ownNames.add(this.name);
    this.ownNames.add(this.listenAddress);
    if (['127.0.0.1', '0.0.0.0', '::', '::1', 'localhost'].includes(listen.host)) {
      for (const h of ['127.0.0.1', 'localhost', '[::1]']) this.ownNames.add(canonicalHost(`${h}:${addr.port}`));
    }
    this.spool.on('ops', (host: string) => this.moverFor(host)?.kick());
    for (const host of this.spool.hosts()) this.moverFor(host)?.kick();
  }

  /** The shared secret this relay proves to its next hops. */
  get secret(): Buffer | undefined {
    return this.options.secret;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): string {
    return this.listenAddress;
  }

  isOwnHost(host: string): boolean {
    return this.ownNames.has(host);
  }

  nextHopOf(host: string): string {
    return this.routing.nextHop(host);
  }

  private moverFor(host: string): Mover | undefined {
    if (this.isOwnHost(host) || this.closing) return undefined;
    const nextHop = this.nextHopOf(host);
    let m = this.movers.get(nextHop);
    if (!m) {
      m = new Mover(this.spool, {
        nextHop,
        clientId: `${this.relayId}>${nextHop}`,
        carries: (h) => !this.isOwnHost(h) && this.nextHopOf(h) === nextHop,
        rateLimiter: this.rateLimiter,
        log: this.log,
        failures: this.failures,
        secret: this.options.secret,
        retry: this.retryPolicies.get(nextHop) ?? this.retryPolicies.get('*') ?? DEFAULT_RETRY,
        hang: { ...DEFAULT_HANG, ...this.options.hang },
      });
      this.movers.set(nextHop, m);
      m.start();
    }
    return m;
  }

  private onConnection(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const conn = new Connection(new SocketTransport(socket, this.maxFrame), this);
    if (!this.access.addressAllowed(socket.remoteAddress)) {
      conn.refuse(0, `address ${socket.remoteAddress} is not in the allowed ranges (--allow)`);
      return;
    }
    if (this.connections.size >= (this.options.maxConnections ?? 1024)) {
      this.log.warn(`refused ${socket.remoteAddress}: ${this.connections.size} connections already open`);
      socket.end(encodeFrameBuffer(0, { type: 'error', code: 'LIMIT', message: `relay ${this.name} has its maximum of ${this.options.maxConnections ?? 1024} connections; try again later` }));
      return;
    }
    this.connections.add(conn);
  }

  /**
   * A connection from this process, without a socket: the relay a mount embeds is
   * reached this way (see in-process-transport.ts). Returns the client's end.
   */
  connectInProcess(clientName: string): FrameTransport {
    if (this.closing) throw new KangarooError('CLOSED', 'relay is shutting down');
    const [client, relay] = inProcessPair(clientName, this.address);
    const conn = new Connection(relay, this);
    this.connections.add(conn);
    this.inProcess.add(conn);
    return client;
  }

  /** Clients connected over the network (other mounts, put, status), not from this process. */
  socketClients(): number {
    let n = 0;
    for (const c of this.connections) if (!this.inProcess.has(c)) n++;
    return n;
  }

  /** A client id names one ordered stream: a newer connection with it replaces an older one. */
  claimClientId(conn: Connection): void {
    for (const c of this.connections) if (c !== conn && c.clientId === conn.clientId) c.close();
  }

  forget(conn: Connection): void {
    this.connections.delete(conn);
  }

  private checkHost(host: string): string {
    return canonicalHost(host);
  }

  /**
   * Takes one ordered op: applied at once for this relay's own host, otherwise
   * spooled (waiting while the spool is full). A resend already held is skipped.
   */
  async acceptOp(op: OrderedOp, clientId: string): Promise<void> {
    const host = this.checkHost(op.host);
    const clean: OrderedOp = { ...op, host, path: normalizePath(op.path) } as OrderedOp;
    if (clean.type === 'rename') clean.to = normalizePath(clean.to);
    if (this.isOwnHost(host)) {
      if (!this.exportRoot) throw new KangarooError('NO_EXPORT', `relay ${this.name} exports no directory (start it with --export DIR)`);
      try {
        if (clientId && op.seq > 0) await this.applyOnce(this.exportRoot, clean, clientId, op.seq);
        else await this.exportRoot.apply(clean);
      } finally {
        // the data is in the file (or refused): a pooled buffer can take the next put
        if (clean.type === 'put') clean.recycle?.();
      }
      return;
    }
    if (clean.type === 'put' && !putIntact(clean)) {
      // refuse it now: the sender still has a good copy and resends it
      throw new KangarooError('INTEGRITY', `data for ${host}${clean.path} at ${clean.offset} does not match the checksum taken where it entered (corrupted on the way); not spooled`);
    }
    while (!this.spool.hasRoom()) {
      if (this.closing) throw new KangarooError('CLOSED', 'relay is shutting down');
      await once(this.spool, 'space');
    }
    this.spool.accept(clean, { clientId, seq: clientId ? op.seq : 0 });
  }

  /**
   * Applies a resendable op unless its seq is at or below the client's watermark.
   * The check, the apply and the raise are one step per client id: a mover that
   * reconnects resends on a new connection while the replaced one may still be
   * applying the same ops, and two overlapping passes could apply a resent
   * truncate after the puts that follow it (and then skip those puts as held).
   */
  private applyOnce(root: ExportRoot, op: OrderedOp, clientId: string, seq: number): Promise<void> {
    const applied = (this.applying.get(clientId) ?? Promise.resolve()).then(async () => {
      if (seq <= this.watermarks!.get(clientId)) return;
      await root.apply(op);
      this.watermarks!.raise(clientId, seq);
    });
    const tail = applied.catch(() => undefined);
    this.applying.set(clientId, tail);
    void tail.then(() => {
      if (this.applying.get(clientId) === tail) this.applying.delete(clientId);
    });
    return applied;
  }

  /**
   * Every op accepted so far is on stable storage (spool fsync'd, applied files fsync'd).
   * A commit answers only after every earlier one still running: those took the dirty
   * segments and files it would otherwise skip, so its own fsyncs may all be done (or
   * none be needed) while ops accepted before it are still being fsync'd. The answers to
   * the commits of one connection (a mover's commit groups) so come back in order.
   */
  commit(): Promise<void> {
    const earlier = this.lastCommit && !this.lastCommit.settled ? this.lastCommit.done : undefined;
    const own = this.commitNow();
    const done = earlier ? Promise.all([earlier, own]).then(() => undefined) : own;
    const entry = { done, settled: false };
    this.lastCommit = entry;
    const settle = () => {
      entry.settled = true;
    };
    done.then(settle, settle);
    return done;
  }

  private async commitNow(): Promise<void> {
    await this.spool.commit().catch((err) => {
      // the spool's error is sticky (a failed fsync is final): say so once, in the log and in status
      if (err !== this.spoolError) {
        this.spoolError = err;
        const e = KangarooError.from(err);
        this.log.error(`spool commit failed: ${e.message}`);
        this.failures.record({ kind: 'spool', target: this.options.spoolDir, code: e.code, class: 'permanent', message: e.message, action: 'commits refused until the relay is restarted' });
      }
      throw err;
    });
    if (this.exportRoot) {
      // only ops whose data is fsync'd may be recorded as applied
      const applied = this.watermarks!.snapshot();
      await this.exportRoot.commit();
      await this.watermarks!.save(applied);
    }
  }

  /** Resolves once every op for the file accepted so far is fsync'd at its destination. */
  async push(hostText: string, p: string, signal: AbortSignal): Promise<void> {
    const host = this.checkHost(hostText);
    const file = normalizePath(p);
    if (this.isOwnHost(host)) {
      if (!this.exportRoot) throw new KangarooError('NO_EXPORT', `relay ${this.name} exports no directory`);
      await this.exportRoot.push(file);
      return;
    }
    await this.spool.waitDelivered(host, file);
    // The next hop has it; now it must pass it on. Transient failures wait, they do not fail the push.
    const backoff = new Backoff();
    for (;;) {
      try {
        await this.forwarder.request(this.nextHopOf(host), { type: 'push', host, path: file });
        return;
      } catch (err) {
        const e = KangarooError.from(err);
        if (!e.transient || signal.aborted || this.closing) throw e;
        await new Promise((r) => setTimeout(r, backoff.next()));
      }
    }
  }

  private upstream(host: string): Upstream {
    const nextHop = this.nextHopOf(host);
    const ask = (req: Request) => this.forwarder.request(nextHop, req);
    return {
      get: async (p, offset, length) => {
        const r = await ask({ type: 'get', host, path: p, offset, length });
        if (r.type !== 'data') throw new KangarooError('BAD_FRAME', 'unexpected reply to get');
        return r.data;
      },
      stat: async (p) => {
        const r = await ask({ type: 'stat', host, path: p });
        if (r.type !== 'statReply') throw new KangarooError('BAD_FRAME', 'unexpected reply to stat');
        return r.info;
      },
      list: async (p) => {
        const r = await ask({ type: 'list', host, path: p });
        if (r.type !== 'listReply') throw new KangarooError('BAD_FRAME', 'unexpected reply to list');
        return r.entries;
      },
    };
  }

  // Each of these takes its snapshot of the spool synchronously, so it sees every earlier put.
  get(hostText: string, p: string, offset: number, length: number): Promise<Buffer> {
    const host = this.checkHost(hostText);
    const file = normalizePath(p);
    if (this.isOwnHost(host)) return this.requireExport().read(file, offset, length);
    return readThrough(this.spool, host, file, offset, length, this.upstream(host));
  }

  async stat(hostText: string, p: string): Promise<FileInfo> {
    const host = this.checkHost(hostText);
    const file = normalizePath(p);
    if (this.isOwnHost(host)) return this.requireExport().stat(file);
    const key = `${host}\0${file}`;
    try {
      const info = await statThrough(this.spool, host, file, this.upstream(host));
      if (info.kind === 'dir') this.knownDirs.set(key, info);
      else this.knownDirs.delete(key);
      return info;
    } catch (err) {
      // Out of reach for now: a directory seen there (or made through this relay) before is
      // taken to be there still, so a program can go on creating files in it; their ops wait
      // in the spool like any other.
      const e = KangarooError.from(err);
      const known = this.knownDirs.get(key);
      if (known && e.transient) return known;
      if (e.code === 'NOT_FOUND') this.knownDirs.delete(key);
      throw err;
    }
  }

  list(hostText: string, p: string): Promise<DirEntry[]> {
    const host = this.checkHost(hostText);
    const dir = normalizePath(p);
    if (this.isOwnHost(host)) return this.requireExport().list(dir);
    return listThrough(this.spool, host, dir, this.upstream(host));
  }

  private requireExport(): ExportRoot {
    if (!this.exportRoot) throw new KangarooError('NO_EXPORT', `relay ${this.name} exports no directory (start it with --export DIR)`);
    return this.exportRoot;
  }

  /** Re-queues blocked files for a host (all of them when path is empty), here and down the chain. */
  async retry(hostText: string, p: string): Promise<number> {
    const host = this.checkHost(hostText);
    if (this.isOwnHost(host)) return 0;
    const n = await this.spool.retry(host, p ? normalizePath(p) : undefined);
    this.moverFor(host)?.kick();
    let downstream = 0;
    try {
      const r = await this.forwarder.request(this.nextHopOf(host), { type: 'retry', host, path: p });
      if (r.type === 'json') downstream = Number((r.value as { requeued?: number }).requeued ?? 0);
    } catch (err) {
      this.log.debug(`retry could not reach ${this.nextHopOf(host)}: ${(err as Error).message}`);
    }
    return n + downstream;
  }

  status(): RelayStatus {
    return buildStatus({
      name: this.name,
      listen: this.listenAddress,
      exportDir: this.options.exportDir,
      spoolDir: this.options.spoolDir,
      startedAt: this.startedAt,
      spool: this.spool,
      movers: [...this.movers.values()].map((m) => m.status()),
      routes: this.routing.entries(),
      connections: this.connections.size,
      bwlimit: this.options.bwlimit,
      nextHopOf: (h) => this.nextHopOf(h),
      buffers: this.buffers.status(),
      failures: this.failures.summary(),
    });
  }

  /** Stops taking connections, stops the movers and closes the spool (which stays on disk). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.spool.emit('space');
    this.server.close();
    for (const c of this.connections) c.close();
    await Promise.all([...this.movers.values()].map((m) => m.stop()));
    await this.forwarder.close();
    await this.buffers.shutdown();
    await this.failures.flush();
    await this.spool.commit().catch(() => undefined);
    await this.spool.close();
    if (this.exportRoot) {
      await this.exportRoot.close();
      await this.watermarks!.save().catch(() => undefined);
    }
  }
}

async function loadOrCreateId(file: string): Promise<string> {
  try {
    const id = (await fsp.readFile(file, 'utf8')).trim();
    if (/^[0-9a-f]{16,64}$/.test(id)) return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = crypto.randomBytes(8).toString('hex');
  await fsp.writeFile(file, id + '\n');
  return id;
}

import { RelayClient } from '../client/client.js';
import { KangarooError } from '../errors.js';
import { OrderedOp, putIntact } from '../protocol/messages.js';
import { crc32 } from '../util/crc32.js';
import { Spool, SpooledOp } from '../spool/spool.js';
import { Logger } from '../util/log.js';
import { Backoff } from './backoff.js';
import { DEFAULT_HANG, HangDetector, HangOptions } from './hang-detector.js';
import { DEFAULT_RETRY, pauseRemainingMs, RetryPolicy } from './retry-policy.js';
import { FailureLog } from './failure-log.js';
import { RateLimiter } from './rate-limiter.js';

/**
 * Drains the spool to one next hop, with the same client calls any program uses.
 *
 * Ops go out in accept order, many per bulk frame, interleaving every pending
 * file on one pipelined connection; a commit follows every few megabytes and
 * the ops before it are released from the spool only when that commit is
 * acknowledged. Several commit groups are in flight at once, so the link is not
 * idle while the next hop fsyncs.
 *
 * Each op carries its spool sequence number and the mover's stable client id,
 * so after a lost connection it resends everything unacknowledged and the next
 * hop drops what it already holds. An unreachable next hop is retried with
 * exponential backoff and jitter, for ever; a permanent refusal of one file
 * (permission denied at the destination, say) stops that file only, keeps its
 * data spooled and is reported through push and status.
 */

export interface MoverOptions {
  nextHop: string;
  clientId: string;
  /** Whether this mover carries ops for a destination host. */
  carries: (host: string) => boolean;
  rateLimiter?: RateLimiter;
  /** Backoff, deadline and maintenance window for this next hop. */
  retry?: RetryPolicy;
  hang?: HangOptions;
  batchBytes?: number;
  commitEveryBytes?: number;
  maxGroupsInFlight?: number;
  log: Logger;
  failures?: FailureLog;
  secret?: Buffer;
}

export interface MoverStatus {
  nextHop: string;
  state: 'idle' | 'connecting' | 'sending' | 'backoff' | 'paused' | 'stopped';
  connected: boolean;
  retries: number;
  bytesSent: number;
  bytesDelivered: number;
  opsDelivered: number;
  inflightOps: number;
  hangs: number;
  failingSinceMs: number | null;
  lastError: { code: string; message: string; at: string } | null;
  nextAttemptInMs: number | null;
}

interface Group {
  ops: SpooledOp[];
  done: Promise<void>;
}

export class Mover {
  private client: RelayClient | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private backoff: Backoff;
  private state: MoverStatus['state'] = 'idle';
  private retries = 0;
  private bytesSent = 0;
  private bytesDelivered = 0;
  private opsDelivered = 0;
  private lastError: MoverStatus['lastError'] = null;
  private nextAttemptAt: number | undefined;
  private inflight = new Set<SpooledOp>();
  private running: Promise<void> | undefined;
  private readonly batchBytes: number;
  private readonly commitEveryBytes: number;
  /** Without a set size or a --bwlimit, groups follow the route's measured rate (see groupBytes). */
  private readonly adaptGroups: boolean;
  private readonly maxGroups: number;
  private readonly retry: RetryPolicy;
  private readonly hang: HangDetector;
  private hungReason: string | undefined;
  /** While this relay's own --bwlimit holds data back, the next hop is not to blame. */
  private throttled = false;
  private failingSince: number | undefined;

  constructor(
    private readonly spool: Spool,
    private readonly options: MoverOptions,
  ) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.backoff = new Backoff(this.retry.backoff);
    this.hang = new HangDetector(options.hang ?? DEFAULT_HANG);
    const rate = options.rateLimiter?.bytesPerSecond;
    // With a slow link, smaller frames keep the limiter smooth and acks frequent.
    this.batchBytes = options.batchBytes ?? (rate ? Math.max(64 * 1024, Math.min(1024 * 1024, rate / 8)) : 1024 * 1024);
    // Each commit costs the next hop an fsync; on a fast link, fewer and larger groups.
    this.commitEveryBytes = options.commitEveryBytes ?? (rate ? Math.max(this.batchBytes, rate / 2) : 32 * 1024 * 1024);
    this.adaptGroups = options.commitEveryBytes === undefined && !rate;
    this.maxGroups = options.maxGroupsInFlight ?? 4;
  }

  get nextHop(): string {
    return this.options.nextHop;
  }

  start(): void {
    if (!this.running) this.running = this.run();
  }

  /** New ops may be waiting (or a blocked file was re-queued). */
  kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.kick();
    this.client?.destroy();
    await this.running;
    this.state = 'stopped';
  }

  status(): MoverStatus {
    return {
      nextHop: this.options.nextHop,
      state: this.state,
      connected: !!this.client && !this.client.closed,
      retries: this.retries,
      bytesSent: this.bytesSent,
      bytesDelivered: this.bytesDelivered,
      opsDelivered: this.opsDelivered,
      inflightOps: this.inflight.size,
      hangs: this.hang.hangs,
      failingSinceMs: this.failingSince ? Date.now() - this.failingSince : null,
      lastError: this.lastError,
      nextAttemptInMs: this.nextAttemptAt ? Math.max(0, Math.round(this.nextAttemptAt - Date.now())) : null,
    };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.hasWork()) {
        this.state = 'idle';
        await this.sleep(60_000);
        continue;
      }
      const paused = pauseRemainingMs(this.retry);
      if (paused > 0) {
        // maintenance window of the next hop: no attempt until it ends
        this.state = 'paused';
        this.nextAttemptAt = Date.now() + paused;
        await this.sleep(Math.min(paused, 60_000));
        continue;
      }
      try {
        if (!this.client || this.client.closed) {
          this.state = 'connecting';
          this.client = await RelayClient.connect(this.options.nextHop, { clientId: this.options.clientId, secret: this.options.secret });
        }
        this.state = 'sending';
        await this.pump(this.client);
        if (this.backoff.attempts > 0) {
          this.options.failures?.record({
            kind: 'delivery',
            target: this.options.nextHop,
            code: 'RECOVERED',
            class: 'transient',
            message: `next hop reachable again after ${this.backoff.attempts} failed attempt(s)`,
            action: 'resumed',
            outcome: 'delivered',
          });
        }
        this.backoff.reset();
        this.nextAttemptAt = undefined;
        this.failingSince = undefined;
      } catch (err) {
        let e = KangarooError.from(err);
        const hung = this.hungReason;
        this.hungReason = undefined;
        if (hung) e = new KangarooError('TIMEOUT', hung);
        this.client?.destroy();
        this.client = undefined;
        for (const sop of this.inflight) sop.inflight = false;
        this.inflight.clear();
        if (this.stopped) break;
        if (e.code === 'ABORTED') continue; // a file was blocked; go on with the others at once
        this.failingSince ??= Date.now();
        if (this.retry.deadlineMs !== undefined && Date.now() - this.failingSince > this.retry.deadlineMs) {
          this.giveUp(e);
          continue;
        }
        this.retries++;
        this.lastError = { code: e.code, message: e.message, at: new Date().toISOString() };
        const delay = this.backoff.next();
        this.nextAttemptAt = Date.now() + delay;
        this.state = 'backoff';
        this.options.log.warn(`delivery to ${this.options.nextHop} failed (${e.code}: ${e.message}); retry ${this.retries} in ${delay} ms`);
        this.options.failures?.record({
          kind: hung ? 'hang' : e.code === 'INTEGRITY' ? 'integrity' : 'delivery',
          target: this.options.nextHop,
          code: e.code,
          class: e.errorClass,
          message: e.message,
          action: hung ? `aborted; retry in ${delay} ms` : e.code === 'INTEGRITY' ? `resend from the spool in ${delay} ms` : `retry in ${delay} ms`,
        });
        await this.sleep(delay);
      }
    }
  }

  /** The deadline of the retry policy passed: stop, keep everything spooled, say why. */
  private giveUp(last: KangarooError): void {
    const minutes = Math.round(this.retry.deadlineMs! / 60_000);
    const reason = { code: 'DEADLINE', message: `${this.options.nextHop} unreachable for longer than the retry deadline (${minutes} min); last error ${last.code}: ${last.message}` };
    let files = 0;
    for (const host of this.spool.hosts()) {
      if (!this.options.carries(host)) continue;
      const seen = new Set<unknown>();
      for (const sop of this.spool.queue(host).values()) {
        if (seen.has(sop.file) || sop.file.blocked) continue;
        seen.add(sop.file);
        this.spool.block(sop.file, reason);
        files++;
      }
    }
    this.failingSince = undefined;
    this.backoff.reset();
    this.lastError = { code: reason.code, message: reason.message, at: new Date().toISOString() };
    this.options.log.error(`${reason.message}: delivery of ${files} file(s) stopped; kangaroo retry starts again`);
    this.options.failures?.record({ kind: 'delivery', target: this.options.nextHop, code: 'DEADLINE', class: 'permanent', message: reason.message, action: `stopped ${files} file(s); data kept in the spool` });
  }

  private hasWork(): boolean {
    for (const host of this.spool.hosts()) {
      if (!this.options.carries(host)) continue;
      for (const sop of this.spool.queue(host).values()) if (!sop.inflight && !sop.file.blocked) return true;
    }
    return false;
  }

  /** Resolves (false) at the next kick: new ops were accepted, or a blocked file was re-queued. */
  private opsArrived(): Promise<false> {
    return new Promise((resolve) => (this.wake = () => resolve(false)));
  }

  /** Picks the next ops to send, in accept order per host, skipping blocked files. */
  private pick(): SpooledOp[] {
    const out: SpooledOp[] = [];
    let bytes = 0;
    for (const host of this.spool.hosts()) {
      if (!this.options.carries(host)) continue;
      for (const sop of this.spool.queue(host).values()) {
        if (sop.inflight || sop.file.blocked) continue;
        out.push(sop);
        bytes += sop.dataLength + 64;
        if (bytes >= this.batchBytes || out.length >= 4096) return out;
      }
    }
    return out;
  }

  /**
   * Bytes per commit group: about a second of what the route has carried lately,
   * between 4 MiB and commitEveryBytes. Everything sent since the last answered
   * commit is sent again after a lost connection, so on a slow link (10 MB/s: 10 MiB
   * groups, not 32) a cut costs seconds of resending, not tens of seconds.
   */
  private groupBytes(): number {
    const rate = this.adaptGroups ? this.hang.recentBytesPerSecond() : undefined;
    if (rate === undefined) return this.commitEveryBytes;
    return groupBytesFor(rate, this.commitEveryBytes);
  }

  /**
   * Picks the next ops to send and starts loading their data (at once, not one
   * after another); undefined when nothing is ready. Data read back from disk is
   * checked against its put's sum here; that CRC also serves the frame's checksum.
   */
  private prepare(): { batch: SpooledOp[]; loaded: Promise<{ wire: OrderedOp[]; bytes: number }> } | undefined {
    const batch = this.pick();
    if (batch.length === 0) return undefined;
    for (const sop of batch) {
      sop.inflight = true;
      this.inflight.add(sop);
    }
    const loaded = Promise.all(batch.map((sop) => this.spool.materialize(sop))).then((ops) => {
      const wire: OrderedOp[] = [];
      let bytes = 0;
      ops.forEach((op, i) => {
        const sop = batch[i]!;
        if (op.type === 'put') {
          op.dataCrc ??= crc32(op.data);
          if (!putIntact(op)) this.corrupted(sop);
        }
        wire.push({ ...op, seq: sop.localSeq });
        bytes += sop.dataLength;
      });
      return { wire, bytes };
    });
    loaded.catch(() => undefined); // seen when awaited; a prefetch dropped with the connection is not an error
    return { batch, loaded };
  }

  /** Sends until nothing is left, then returns once everything sent is committed. */
  private async pump(client: RelayClient): Promise<void> {
    this.hang.progress();
    const watchdog = setInterval(() => {
      let bytes = 0;
      for (const sop of this.inflight) bytes += sop.dataLength + 64;
      if (this.throttled) {
        this.hang.progress();
        return;
      }
      if (this.hang.isHung(bytes)) {
        this.hang.hangs++;
        this.hungReason = `no progress from ${this.options.nextHop} for ${Math.round(this.hang.limitMs(bytes) / 1000)} s with ${bytes} bytes in flight (hung transfer)`;
        this.options.log.warn(this.hungReason);
        client.destroy();
      }
    }, 500);
    try {
      await this.pumpGroups(client);
    } finally {
      clearInterval(watchdog);
    }
  }

  private async pumpGroups(client: RelayClient): Promise<void> {
    const groups: Group[] = [];
    let current: SpooledOp[] = [];
    let currentBytes = 0;
    let bulks: Promise<void>[] = [];
    let groupStart = Date.now();
    /** The newest group's release: a group leaves the spool only after every earlier one (see closeGroup). */
    let released: Promise<void> = Promise.resolve();
    // a cut connection: stop reading the spool and spending bandwidth on it, surface its error
    const lost = async (): Promise<never> => {
      for (const g of groups) await g.done;
      await Promise.all(bulks);
      throw new KangarooError('CONNECTION_LOST', `connection to ${this.options.nextHop} lost`);
    };
    const closeGroup = () => {
      const ops = current;
      const replies = bulks;
      const started = groupStart;
      current = [];
      currentBytes = 0;
      bulks = [];
      const committed = client.commit();
      // Released in order even if the next hop answers a later commit first: the spool's view of a
      // file (read-your-writes) must never lose a later put while an earlier truncate stays in it.
      const done = Promise.all([released, ...replies, committed]).then(() => {
        this.hang.progress();
        let bytes = 0;
        for (const sop of ops) bytes += sop.dataLength;
        this.hang.recordTransfer(bytes, Date.now() - started);
        this.spool.markDelivered(ops);
        for (const sop of ops) this.inflight.delete(sop);
        this.opsDelivered += ops.length;
        for (const sop of ops) this.bytesDelivered += sop.dataLength;
      });
      // a rejection is handled when the group is awaited; do not let it go unobserved meanwhile
      done.catch(() => undefined);
      released = done;
      groups.push({ ops, done });
    };
    // the next batch's data is read from the spool while this one is checked and sent
    let next = this.prepare();
    for (;;) {
      if (this.stopped) throw new KangarooError('CLOSED', 'mover stopped');
      const prepared = next ?? this.prepare();
      next = undefined;
      if (!prepared) {
        if (current.length > 0) closeGroup();
        if (groups.length === 0) return;
        // Ops accepted while earlier groups wait for their commits go out at once: waiting for
        // the oldest commit here (its data's trip, the next hop's fsync, the answer's trip back)
        // left the link idle between a writer's files, and during an outage kept everything
        // accepted after its start in the spool instead of queued on the connection.
        const oldest = groups[0]!;
        const committed = await Promise.race([oldest.done.then(() => true), this.opsArrived()]);
        this.wake = undefined;
        if (committed && groups[0] === oldest) groups.shift();
        continue;
      }
      const { batch } = prepared;
      const { wire, bytes } = await prepared.loaded;
      next = this.prepare();
      if (client.closed) await lost();
      if (this.options.rateLimiter) {
        this.throttled = true;
        try {
          await this.options.rateLimiter.take(bytes + 64 * batch.length);
        } finally {
          this.throttled = false;
          this.hang.progress();
        }
      }
      if (client.closed) await lost();
      if (current.length === 0) groupStart = Date.now();
      const reply = client.bulk(wire).then((errors) => {
        this.hang.progress();
        this.onBulkErrors(batch, errors);
      });
      reply.catch(() => undefined);
      bulks.push(reply);
      this.bytesSent += bytes;
      current.push(...batch);
      currentBytes += bytes;
      if (currentBytes >= this.groupBytes()) closeGroup();
      while (groups.length >= this.maxGroups) await groups.shift()!.done;
    }
  }

  /**
   * This relay's own copy of a put no longer matches the checksum taken where the
   * data entered: never deliver it. The file stops, the failure is logged, and the
   * writer must write the data again.
   */
  private corrupted(sop: SpooledOp): never {
    const message = `the spooled copy of ${sop.file.host}${sop.file.path} at ${sop.op.type === 'put' ? sop.op.offset : 0} is corrupted (checksum mismatch); not delivered`;
    this.options.log.error(message);
    this.spool.block(sop.file, { code: 'INTEGRITY', message });
    this.options.failures?.record({
      kind: 'integrity',
      target: `kangaroo://${sop.file.host}${sop.file.path}`,
      code: 'INTEGRITY',
      class: 'permanent',
      message,
      action: 'blocked: the data must be written again',
    });
    throw new KangarooError('ABORTED', message);
  }

  /**
   * A next hop that refuses an op refuses every later op on that connection
   * (ABORTED), so nothing is applied out of order. A permanent refusal blocks
   * its file; then the connection restarts and the rest is resent.
   */
  private onBulkErrors(batch: SpooledOp[], errors: { index: number; code: string; message: string }[]): void {
    if (errors.length === 0) return;
    let transient: KangarooError | undefined;
    for (const e of errors) {
      const sop = batch[e.index];
      if (!sop) continue;
      const err = KangarooError.fromWire(e.code, e.message);
      if (err.code === 'ABORTED') continue;
      if (err.transient) {
        transient ??= err;
        continue;
      }
      this.options.log.error(`delivery of ${sop.file.host}${sop.file.path} stopped: ${err.code}: ${err.message}`);
      this.lastError = { code: err.code, message: err.message, at: new Date().toISOString() };
      this.spool.block(sop.file, { code: err.code, message: err.message });
      this.options.failures?.record({
        kind: 'delivery',
        target: `kangaroo://${sop.file.host}${sop.file.path}`,
        code: err.code,
        class: 'permanent',
        message: err.message,
        action: 'blocked: data kept in the spool until kangaroo retry',
      });
    }
    throw transient ?? new KangarooError('ABORTED', 'restarting after a refused operation');
  }
}

/** A commit group of about one second at `bytesPerSecond`, between 4 MiB and `most`. */
export function groupBytesFor(bytesPerSecond: number, most: number): number {
  return Math.max(Math.min(4 * 1024 * 1024, most), Math.min(most, Math.round(bytesPerSecond)));
}

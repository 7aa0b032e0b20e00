import { RelayClient } from '../client/client.js';
import { KangarooError } from '../errors.js';
import { Logger } from '../util/log.js';

/**
 * The mount's connection to its relay, re-established on demand: when the relay
 * restarts (after a crash, say), the next operation connects again instead of
 * failing every later call. Writes accepted but not yet committed when a
 * connection dies are reported by the next commit (EIO to the program's close
 * or fsync), never silently dropped.
 */
export class RelayLink {
  private client: Promise<RelayClient> | undefined;
  private lostSinceCommit = false;
  /** Ordered ops sent since the last commit: only these can be lost with a connection. */
  private uncommitted = false;

  /**
   * `connect` opens a connection (by default over TCP to `address`); `first`, a connection
   * already open, is used until it closes.
   */
  constructor(
    readonly address: string,
    private readonly log: Logger,
    secret?: Buffer,
    private readonly connect: () => Promise<RelayClient> = () => RelayClient.connect(address, { secret }),
    first?: RelayClient,
  ) {
    if (first) this.client = Promise.resolve(first);
  }

  async get(): Promise<RelayClient> {
    if (this.client) {
      const c = await this.client.catch(() => undefined);
      if (c && !c.closed) return c;
      if (c) {
        if (this.uncommitted) this.lostSinceCommit = true;
        this.log.warn(`connection to relay ${this.address} lost; reconnecting`);
      }
      this.client = undefined;
    }
    const p = this.connect();
    this.client = p;
    p.catch(() => {
      if (this.client === p) this.client = undefined;
    });
    return p;
  }

  /** Called before sending an ordered op (a put, truncate, mkdir …). */
  wrote(): void {
    this.uncommitted = true;
  }

  /** Commit, failing if a connection was lost since the last commit (uncommitted puts may be gone). */
  async commit(): Promise<void> {
    const c = await this.get();
    await c.commit();
    this.uncommitted = false;
    if (this.lostSinceCommit) {
      this.lostSinceCommit = false;
      throw new KangarooError('CONNECTION_LOST', `the connection to relay ${this.address} was lost before this commit: recent writes may not have been spooled`);
    }
  }

  async close(): Promise<void> {
    const c = await this.client?.catch(() => undefined);
    await c?.close();
  }
}

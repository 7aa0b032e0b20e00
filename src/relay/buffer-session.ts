import { canonicalHost } from '../address.js';
import { RelayClient } from '../client/client.js';
import { KangarooError } from '../errors.js';
import { Reply } from '../protocol/messages.js';
import type { Relay } from './relay.js';

/**
 * One connection's grid-buffer handles. A buffer on this relay's own host is
 * served by its registry; a buffer on another host is reached through a
 * connection of this session's own to the next hop, so that when the client
 * goes away the downstream handles go with it (a vanished writer, seen as such
 * at the buffer's host). Writes of one handle complete before its close.
 */
const FORWARDED = 0x80000000;

interface Forwarded {
  client: RelayClient;
  remote: number;
}

export class BufferSession {
  private forwarded = new Map<number, Forwarded>();
  private nextForwarded = FORWARDED;
  private clients = new Map<string, Promise<RelayClient>>();
  private pendingWrites = new Map<number, Set<Promise<unknown>>>();

  constructor(
    private readonly relay: Relay,
    private readonly owner: object,
  ) {}

  private registry() {
    return this.relay.buffers;
  }

  private client(nextHop: string): Promise<RelayClient> {
    let c = this.clients.get(nextHop);
    if (!c) {
      c = RelayClient.connect(nextHop, { connectTimeoutMs: 5000, secret: this.relay.secret });
      this.clients.set(nextHop, c);
      c.catch(() => this.clients.delete(nextHop));
    }
    return c;
  }

  async open(hostText: string, name: string, role: 'read' | 'write'): Promise<Reply> {
    const host = canonicalHost(hostText);
    if (this.relay.isOwnHost(host)) {
      const r = this.registry().open(name, role, this.owner);
      return { type: 'bufOpened', handle: r.handle, size: r.size };
    }
    const client = await this.client(this.relay.nextHopOf(host));
    const r = await client.bufOpen(host, name, role);
    const local = this.nextForwarded++;
    if (this.nextForwarded >= 0xfffffff0) this.nextForwarded = FORWARDED;
    this.forwarded.set(local, { client, remote: r.handle });
    return { type: 'bufOpened', handle: local, size: r.size };
  }

  write(handle: number, offset: number, data: Buffer): Promise<void> {
    const f = this.forwarded.get(handle);
    const p = f ? f.client.bufWrite(f.remote, offset, data) : this.registry().write(handle, this.owner, offset, data);
    let set = this.pendingWrites.get(handle);
    if (!set) this.pendingWrites.set(handle, (set = new Set()));
    set.add(p);
    const done = () => set!.delete(p);
    p.then(done, done);
    return p;
  }

  read(handle: number, offset: number, length: number): Promise<Buffer> {
    const f = this.forwarded.get(handle);
    return f ? f.client.bufRead(f.remote, offset, length) : this.registry().read(handle, this.owner, offset, length);
  }

  async close(handle: number): Promise<void> {
    const pending = this.pendingWrites.get(handle);
    if (pending) await Promise.allSettled([...pending]);
    this.pendingWrites.delete(handle);
    const f = this.forwarded.get(handle);
    if (f) {
      this.forwarded.delete(handle);
      await f.client.bufClose(f.remote);
    } else {
      this.registry().closeHandle(handle, this.owner);
    }
  }

  async stat(hostText: string, name: string): Promise<Reply> {
    const host = canonicalHost(hostText);
    if (this.relay.isOwnHost(host)) return { type: 'json', value: this.registry().stat(name) };
    const client = await this.client(this.relay.nextHopOf(host));
    return { type: 'json', value: await client.bufStat(host, name) };
  }

  /** The connection is gone: abandon local handles, drop downstream connections (abandoning theirs). */
  end(): void {
    this.registry().ownerGone(this.owner);
    for (const c of this.clients.values()) void c.then((client) => client.destroy(), () => undefined);
    this.clients.clear();
    this.forwarded.clear();
  }
}

export function requireBufferHandle(handle: number): void {
  if (!Number.isInteger(handle) || handle <= 0) throw new KangarooError('BAD_ARGUMENT', `bad buffer handle ${handle}`);
}

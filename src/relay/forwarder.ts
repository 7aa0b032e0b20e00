import { RelayClient } from '../client/client.js';
import { KangarooError } from '../errors.js';
import { Reply, Request } from '../protocol/messages.js';

/**
 * Connections to next hops for requests that are answered rather than spooled
 * (get, stat, list, push, retry). One cached connection per next hop; a request
 * that finds its cached connection dead reconnects once.
 */
export class Forwarder {
  private clients = new Map<string, Promise<RelayClient>>();
  private closed = false;

  constructor(private readonly secret?: Buffer) {}

  private connect(nextHop: string): Promise<RelayClient> {
    let c = this.clients.get(nextHop);
    if (!c) {
      c = RelayClient.connect(nextHop, { connectTimeoutMs: 5000, secret: this.secret });
      this.clients.set(nextHop, c);
      c.catch(() => this.clients.delete(nextHop));
    }
    return c;
  }

  async request(nextHop: string, req: Request): Promise<Reply> {
    if (this.closed) throw new KangarooError('CLOSED', 'relay is shutting down');
    for (let attempt = 0; ; attempt++) {
      const client = await this.connect(nextHop);
      if (client.closed) {
        this.clients.delete(nextHop);
        if (attempt === 0) continue;
      }
      try {
        return await client.request(req);
      } catch (err) {
        const e = KangarooError.from(err);
        if (client.closed) this.clients.delete(nextHop);
        if (attempt === 0 && client.closed && (e.code === 'CONNECTION_LOST' || e.code === 'CLOSED')) continue;
        throw e;
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.clients.values()) {
      const client = await c.catch(() => undefined);
      client?.destroy();
    }
    this.clients.clear();
  }
}

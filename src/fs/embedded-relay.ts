import { RelayClient } from '../client/client.js';
import { Relay } from '../relay/relay.js';
import { Logger } from '../util/log.js';

/**
 * The relay a mount starts when no relay is running, in the mount's own process.
 * The mount reaches it without a socket (src/client/in-process-transport.ts): the
 * bytes a program writes are copied once on their way into the spool and
 * checksummed once, where through a socket they were copied three times and
 * checksummed on both sides. Other clients (kangaroo status, put, another mount)
 * reach it at its TCP address, as any relay.
 */
export interface EmbeddedRelayOptions {
  /** Wanted listen address; any free port when that one is taken. */
  listen: string;
  spoolDir: string;
  /** Bytes per second it sends on. */
  bwlimit?: number;
  secret?: Buffer;
  log: Logger;
}

export class EmbeddedRelay {
  private constructor(
    private readonly relay: Relay,
    private readonly secret: Buffer | undefined,
  ) {}

  static async start(options: EmbeddedRelayOptions): Promise<EmbeddedRelay> {
    const { spoolDir, bwlimit, log, secret } = options;
    let relay: Relay;
    try {
      relay = await Relay.start({ listen: options.listen, spoolDir, bwlimit, log, secret });
    } catch {
      // the address is taken by something that is not a relay: any free port will do
      relay = await Relay.start({ listen: '127.0.0.1:0', spoolDir, bwlimit, log, secret });
    }
    return new EmbeddedRelay(relay, secret);
  }

  get address(): string {
    return this.relay.address;
  }

  /** A client connected in this process. */
  connect(): Promise<RelayClient> {
    return RelayClient.over(this.relay.connectInProcess('mount'), this.relay.address, { secret: this.secret });
  }

  /** Clients of this relay from other processes (another mount that found it at its address, say). */
  otherClients(): number {
    return this.relay.socketClients();
  }

  /** Stops the relay; its spool stays on disk. */
  close(): Promise<void> {
    return this.relay.close();
  }
}

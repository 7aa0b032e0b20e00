import { Worker } from 'node:worker_threads';
import { KangarooError } from '../errors.js';
import { Logger } from '../util/log.js';

/**
 * The relay a mount starts when no relay is running, on a thread of its own.
 * Its spooling, checksums and delivery then run beside the FUSE handlers instead
 * of between them: the mount's thread answers every FUSE request, and a program's
 * next write waits for it (measured: dd through a mount with the relay on the
 * mount's thread reached 176-197 MB/s, with a relay process beside it 258-268).
 * The mount talks to it over its TCP address, as to any relay; its log lines
 * come back to the mount's log.
 */
export interface EmbeddedRelayOptions {
  /** Wanted listen address; any free port when that one is taken. */
  listen: string;
  spoolDir: string;
  secret?: Buffer;
  log: Logger;
}

type FromWorker =
  | { type: 'ready'; address: string }
  | { type: 'log'; level: keyof Logger; message: string }
  | { type: 'failed'; message: string }
  | { type: 'closed' };

export class EmbeddedRelay {
  private constructor(
    private readonly worker: Worker,
    readonly address: string,
  ) {}

  static start(options: EmbeddedRelayOptions): Promise<EmbeddedRelay> {
    const worker = new Worker(new URL('./embedded-relay-worker.js', import.meta.url), {
      workerData: { listen: options.listen, spoolDir: options.spoolDir, secret: options.secret },
    });
    return new Promise((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'log') options.log[m.level](m.message);
        else if (m.type === 'ready') resolve(new EmbeddedRelay(worker, m.address));
        else if (m.type === 'failed') reject(new KangarooError('IO', `embedded relay: ${m.message}`));
      });
      worker.on('error', (err) => {
        options.log.error(`embedded relay stopped: ${err.message}`);
        reject(err);
      });
    });
  }

  /** Stops the relay (its spool stays on disk) and its thread. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      this.worker.on('message', (m: FromWorker) => m.type === 'closed' && resolve());
      this.worker.once('exit', () => resolve());
    });
    this.worker.postMessage({ type: 'close' });
    await closed;
    await this.worker.terminate();
  }
}

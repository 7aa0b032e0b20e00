import { RelayClient } from '../client/client.js';
import { KangarooError } from '../errors.js';
import { relayAddress, secretFrom } from './defaults.js';

/** Common plumbing for client commands: connect, run, report errors the same way everywhere. */
/** The global options every client command has. */
export interface ClientFlags {
  relay?: unknown;
  'secret-file'?: unknown;
  [other: string]: unknown;
}

export async function withClient<T>(flags: ClientFlags, fn: (c: RelayClient) => Promise<T>): Promise<T> {
  const address = relayAddress(flags.relay as string | undefined);
  const secret = secretFrom(flags['secret-file'] as string | undefined);
  let client: RelayClient;
  try {
    client = await RelayClient.connect(address, { secret, batching: !flags.unbatched });
  } catch (err) {
    const e = KangarooError.from(err);
    if (!e.transient) throw e;
    throw new KangarooError(e.code, `${e.message}\n  (is a relay running there? start one with: kangaroo relay, or point --relay / KANGAROO_RELAY at one)`);
  }
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Prints an error as `kangaroo: CODE: message` and sets a failing exit status. */
export function reportError(err: unknown): void {
  const e = KangarooError.from(err);
  process.stderr.write(`kangaroo: ${e.code}: ${e.message}\n`);
  process.exitCode = 1;
}

/** Writes a ready file for scripts: whole, then renamed, so a poller never reads half a line. */
export async function writeReadyFile(file: string, line: string): Promise<void> {
  const fsp = await import('node:fs/promises');
  await fsp.writeFile(`${file}.tmp`, line + '\n');
  await fsp.rename(`${file}.tmp`, file);
}

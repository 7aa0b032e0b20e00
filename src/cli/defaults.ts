import os from 'node:os';
import path from 'node:path';
import { DEFAULT_RELAY } from '../address.js';
import { readSecretFile } from '../relay/access.js';

/** Where a relay keeps its spool unless told otherwise: the user's state directory. */
export function defaultStateDir(): string {
  const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'kangaroo');
}

export function defaultSpoolDir(): string {
  return path.join(defaultStateDir(), 'spool');
}

/** The relay a client talks to: --relay, else KANGAROO_RELAY, else the local default ("closest server"). */
export function relayAddress(flag: string | undefined): string {
  return flag || process.env.KANGAROO_RELAY || DEFAULT_RELAY;
}

/** How a lone `-` (stdin or stdout) reaches the commands: yargs would drop a bare `-`. */
export const STDIO = '<stdio>';

export function protectStdioArgs(args: string[]): string[] {
  return args.map((a) => (a === '-' ? STDIO : a));
}

/** The shared secret from --secret-file, else $KANGAROO_SECRET_FILE; none when neither is set. */
export function secretFrom(flag: string | undefined): Buffer | undefined {
  const file = secretFilePath(flag);
  return file ? readSecretFile(file) : undefined;
}

/** Where secretFrom reads the secret (absolute, for a process started elsewhere); none when neither is set. */
export function secretFilePath(flag: string | undefined): string | undefined {
  const file = flag || process.env.KANGAROO_SECRET_FILE;
  return file ? path.resolve(file) : undefined;
}

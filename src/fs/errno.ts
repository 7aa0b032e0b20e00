import os from 'node:os';
import { errnoOf, KangarooError } from '../errors.js';

/**
 * FUSE wants a negative errno. Every failure goes through here: a KangarooError
 * by its code's errno, a Node system error by its own code, anything else EIO.
 */
export function errno(name: string): number {
  const n = (os.constants.errno as Record<string, number>)[name];
  return n ? -n : -(os.constants.errno.EIO as number);
}

export function toErrno(err: unknown): number {
  if (err instanceof KangarooError) return errno(errnoOf(err.code));
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code && (os.constants.errno as Record<string, number>)[code]) return errno(code);
  return errno(KangarooError.from(err).errno);
}

import fsp from 'node:fs/promises';
import type { BackgroundRelayOptions } from './background-relay.js';

/**
 * What a running mount leaves next to its control socket, for `kangaroo umount` to
 * read if the mount's process dies: whether it embedded its relay and how that
 * relay was set up. A mount killed with data committed to its embedded relay's
 * spool but not yet delivered leaves no relay running; umount of the dead mount
 * starts one on that spool, as a clean unmount would have.
 */
export interface MountRecord {
  pid: number;
  mountpoint: string;
  /** How the relay the mount embedded was set up; null when it used one already running. */
  embedded: BackgroundRelayOptions | null;
}

function recordPath(socketPath: string): string {
  return socketPath.replace(/\.sock$/, '') + '.json';
}

export async function writeMountRecord(socketPath: string, rec: MountRecord): Promise<void> {
  const file = recordPath(socketPath);
  await fsp.writeFile(file + '.tmp', JSON.stringify(rec) + '\n');
  await fsp.rename(file + '.tmp', file);
}

/** The record, or undefined when there is none or it cannot be read. */
export async function readMountRecord(socketPath: string): Promise<MountRecord | undefined> {
  try {
    return JSON.parse(await fsp.readFile(recordPath(socketPath), 'utf8')) as MountRecord;
  } catch {
    return undefined;
  }
}

export async function removeMountRecord(socketPath: string): Promise<void> {
  await fsp.rm(recordPath(socketPath), { force: true });
}

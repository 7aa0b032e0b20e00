import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from '../resources.js';
import { Approach } from './approach.js';
import { deferUnmount, isMounted, start, waitUntil } from './exec.js';
import { SshServer } from './sshd.js';

/**
 * Streaming: sshfs mounts the destination directory; every write goes over the
 * link as an SFTP write, so the program runs at the link's pace, and a broken
 * connection is the program's problem. sshfs's defaults, as a user gets them
 * (no reconnect, no keep-alive).
 */
export async function sshfsApproach(res: Resources, ssh: SshServer, destDir: string): Promise<Approach> {
  const mnt = path.join(await res.tempDir(), 'mnt');
  await fsp.mkdir(mnt);
  const opts = [`IdentityFile=${ssh.key}`, `port=${ssh.port}`, 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'BatchMode=yes', 'LogLevel=ERROR'];
  deferUnmount(res, 'sshfs', mnt);
  const p = start(res, 'sshfs', 'sshfs', ['-f', '-o', opts.join(','), `root@${ssh.host}:${destDir}`, mnt]);
  await waitUntil('sshfs mount', () => isMounted(mnt), 20_000, () => (p.exited() ? p.output() || 'exited' : undefined));
  return { key: 'sshfs', label: 'streaming (sshfs)', settings: 'sshfs defaults (no reconnect)', writeDir: mnt, destDir };
}

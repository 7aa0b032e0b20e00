import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from '../resources.js';
import { Approach } from './approach.js';
import { deferUnmount, isMounted, start, waitUntil } from './exec.js';
import { SshServer } from './sshd.js';

/**
 * Write-back: rclone mount over SFTP with --vfs-cache-mode writes. A file is
 * written to a local cache, and uploaded after it is closed (and a write-back
 * delay has passed). The delay is set to 1 s instead of rclone's 5 s, so the
 * comparison measures the design rather than an idle timer.
 */
export const RCLONE_WRITE_BACK = '1s';

export async function rcloneApproach(res: Resources, ssh: SshServer, destDir: string, bwlimitMBps?: number): Promise<Approach> {
  const dir = await res.tempDir();
  const mnt = path.join(dir, 'mnt');
  await fsp.mkdir(mnt);
  const config = path.join(dir, 'rclone.conf');
  // no hash commands: rclone would otherwise run md5sum on the destination after each upload
  await fsp.writeFile(
    config,
    ['[dest]', 'type = sftp', `host = ${ssh.host}`, `port = ${ssh.port}`, 'user = root', `key_file = ${ssh.key}`, 'shell_type = unix', 'md5sum_command = none', 'sha1sum_command = none', ''].join('\n'),
  );
  const args = ['mount', `dest:${destDir}`, mnt, '--config', config, '--cache-dir', path.join(dir, 'cache'), '--vfs-cache-mode', 'writes', '--vfs-write-back', RCLONE_WRITE_BACK, '--log-level', 'ERROR'];
  if (bwlimitMBps !== undefined) args.push('--bwlimit', `${bwlimitMBps}M`);
  deferUnmount(res, 'rclone', mnt);
  const p = start(res, 'rclone mount', 'rclone', args);
  await waitUntil('rclone mount', () => isMounted(mnt), 20_000, () => (p.exited() ? p.output() || 'exited' : undefined));
  return { key: 'rclone', label: 'write-back (rclone)', settings: `--vfs-cache-mode writes --vfs-write-back ${RCLONE_WRITE_BACK}`, writeDir: mnt, destDir };
}

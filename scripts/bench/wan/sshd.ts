import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from '../resources.js';
import { Started, killTree, must, run, sleep, start, waitUntil } from './exec.js';
import { Link } from './link.js';
import { freePort } from '../ports.js';

/**
 * An sshd of the harness's own on the destination host: its own configuration,
 * host key, authorized key and pid file in a temp dir, listening only on the
 * link's destination address. The system's sshd is neither started nor touched.
 * It serves sshfs and rclone (SFTP) and scp (SFTP too, since OpenSSH 9).
 */

export interface SshServer {
  host: string;
  port: number;
  /** The client's private key. */
  key: string;
  /** ssh -o options every client uses: key only, no host key checks, no prompts. */
  options: string[];
  /** SIGKILL the daemon and every session it forked (as a crashed server host would). */
  kill(): void;
  /** Starts it again on the same address, key and configuration. */
  restart(): Promise<void>;
}

export async function startSshd(res: Resources, link: Link): Promise<SshServer> {
  const dir = await res.tempDir();
  const hostKey = path.join(dir, 'host_key');
  const key = path.join(dir, 'client_key');
  await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  await must('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  await fsp.copyFile(`${key}.pub`, path.join(dir, 'authorized_keys'));
  // inside the namespace the address is ours alone; on loopback pick a free port
  const port = link.kind === 'netns' ? 22 : await freePort();
  const config = path.join(dir, 'sshd_config');
  await fsp.writeFile(
    config,
    [
      `ListenAddress ${link.destIp}:${port}`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // the temp dir's modes are not what StrictModes wants for a home directory
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      'MaxStartups 100',
      'MaxSessions 100',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  // sshd refuses to start without its privilege-separation directory (made by the package's service unit)
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  let daemon: Started | undefined;
  // the sessions a daemon forked outlive it: kill the whole tree (registered before the
  // mounts' unmounts, so it runs after them)
  res.defer({
    name: 'sshd sessions',
    run: async () => {
      if (daemon?.child.pid !== undefined) killTree(daemon.child.pid);
    },
    runSync: () => {
      if (daemon?.child.pid !== undefined) killTree(daemon.child.pid);
    },
  });
  const launch = async () => {
    const [cmd, args] = link.onDest('/usr/sbin/sshd', ['-D', '-e', '-f', config]);
    daemon = start(res, 'sshd (destination)', cmd, args);
    const d = daemon;
    // ready when a connection gets the SSH banner
    await waitUntil(
      'sshd on the destination',
      async () => (await run('ssh', [...options, '-p', String(port), `root@${link.destIp}`, 'true'], 10_000)).code === 0,
      20_000,
      () => (d.exited() ? d.output() || 'exited' : undefined),
    );
  };
  const options = [
    '-i', key,
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'LogLevel=ERROR',
    '-o', 'ConnectTimeout=10',
  ];
  await launch();
  return {
    host: link.destIp,
    port,
    key,
    options,
    kill() {
      if (daemon?.child.pid !== undefined) killTree(daemon.child.pid);
    },
    async restart() {
      await sleep(0);
      await launch();
    },
  };
}

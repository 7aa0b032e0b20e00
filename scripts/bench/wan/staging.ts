import path from 'node:path';
import { Resources } from '../resources.js';
import { Approach } from './approach.js';
import { run } from './exec.js';
import { SshServer } from './sshd.js';

/**
 * Staging: the program writes to local disk, and only when it has finished is the
 * output copied (scp -r of the run's directory). Nothing moves while the program
 * computes, and a failed copy is simply failed: nobody retries it.
 */
export async function stagingApproach(res: Resources, ssh: SshServer, destDir: string, bwlimitMBps?: number): Promise<Approach> {
  const writeDir = await res.tempDir();
  const limit = bwlimitMBps !== undefined ? ['-l', String(Math.round(bwlimitMBps * 8000))] : [];
  return {
    key: 'staging',
    label: 'staging (local, then scp)',
    settings: 'scp -r after the program exits',
    writeDir,
    destDir,
    afterProgram: (runDir) =>
      run('scp', ['-q', '-r', ...limit, '-P', String(ssh.port), ...ssh.options, path.join(writeDir, runDir), `root@${ssh.host}:${destDir}/`], 30 * 60_000),
  };
}

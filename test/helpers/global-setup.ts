import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

/**
 * Runs once around the whole suite. Before: where /dev/fuse exists, the FUSE
 * stack must load (a skip there would hide a broken install). After: any kangaroo
 * mount a failed test left behind under the temp directory is detached, so the
 * suite never leaves a dead mount point.
 */
function kangarooMounts(runId: string): string[] {
  const tmp = fs.realpathSync(os.tmpdir());
  const mine = `kangaroo-test-${runId}-`;
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length > 2 && f[0] === 'kangaroo' && f[2]!.startsWith('fuse') && f[1]!.startsWith(tmp) && f[1]!.includes(mine))
    .map((f) => f[1]!.replace(/\\040/g, ' '));
}

export async function setup(): Promise<() => void> {
  // Test directories carry this run's id, so teardown touches only this run's mounts.
  const runId = process.env.KANGAROO_TEST_RUN ?? Math.random().toString(36).slice(2, 8);
  process.env.KANGAROO_TEST_RUN = runId;
  if (fs.existsSync('/dev/fuse')) {
    const { createRequire } = await import('node:module');
    const require = createRequire(import.meta.url);
    require('fuse-native'); // throws if libfuse.so.2 or the binding is missing
  }
  return () => {
    for (const m of kangarooMounts(runId)) {
      try {
        execFileSync('fusermount', ['-u', '-z', m]);
        console.warn(`global teardown: detached a mount left behind at ${m}`);
      } catch {
        /* already gone */
      }
    }
  };
}

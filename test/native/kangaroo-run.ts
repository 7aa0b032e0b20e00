import fs from 'node:fs';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { run } from '../helpers/mount-process.js';
import { CLI, tempDir } from '../helpers/relay-process.js';

/**
 * `kangaroo run` for the shim tests. Each test gets a directory that is also the
 * TMPDIR of `kangaroo run` (so its private mount lives inside) and the state
 * directory (control sockets, embedded spool). Cleanup detaches any mount left
 * below the directory before it is removed (onTestFinished hooks run in reverse
 * order), pass or fail.
 */

export const SHIM = path.resolve(__dirname, '../../native/build/libkangaroo-preload.so');
export const ROOT = path.resolve(__dirname, '../..');

export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
}

export async function runDir(): Promise<string> {
  const dir = fs.realpathSync(await tempDir());
  onTestFinished(async () => {
    for (const m of mountsUnder(dir)) await run('fusermount', ['-u', '-z', m.replace(/\\040/g, ' ')]);
  });
  return dir;
}

export function runEnv(dir: string, env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { XDG_STATE_HOME: path.join(dir, 'state'), TMPDIR: dir, ...env };
}

/** `kangaroo run ARGS` (ARGS include `-- COMMAND ...`); resolves with its status and output. */
export function kangarooRun(dir: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}) {
  return run(process.execPath, [CLI, 'run', ...args], { cwd: opts.cwd ?? dir, env: runEnv(dir, opts.env), input: opts.input, timeoutMs: 120_000 });
}

/** What `kangaroo run` must leave behind in its TMPDIR: no mount and no directory of its own. */
export function leftovers(dir: string): string[] {
  return [...mountsUnder(dir), ...fs.readdirSync(dir).filter((f) => f.startsWith('kangaroo-run-'))];
}

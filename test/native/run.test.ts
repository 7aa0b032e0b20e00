import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startMount } from '../helpers/mount-process.js';
import { CLI, freePort, startRelay, waitFor } from '../helpers/relay-process.js';
import { kangarooRun, leftovers, mountsUnder, runDir, runEnv, SHIM } from './kangaroo-run.js';

/**
 * `kangaroo run` as a wrapper: it returns the command's own status (128+signal
 * when a signal ended it, 127/126 when it cannot start, 125 for its own
 * failures), passes stdin and signals through, commits before returning, works
 * with a mount that is already running (--mount: commit, keep the mount), and
 * maps the name service's names. It never leaves a mount behind, even when it is
 * killed itself.
 */

function isMounted(mountpoint: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);
}

/** Kills a process we started (by its pid) if it is still there when the test ends. */
function killLater(pidFile: string): void {
  onTestFinished(() => {
    try {
      process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
    } catch {
      /* gone already */
    }
  });
}

describe('kangaroo run', () => {
  it('returns the command\'s exit status, passes stdin through, and loads the shim into the command\'s children', async () => {
    expect(fs.existsSync(SHIM), `${SHIM} is not built (node scripts/build-native.cjs)`).toBe(true);
    const dir = await runDir();
    const hop = await startRelay(dir, 'hop');
    const r = ['--relay', hop.address, '--'];
    expect((await kangarooRun(dir, [...r, 'sh', '-c', 'exit 7'])).code).toBe(7);
    expect((await kangarooRun(dir, [...r, 'true'])).code).toBe(0);
    expect((await kangarooRun(dir, [...r, 'sh', '-c', 'kill -TERM $$'])).code).toBe(128 + 15);
    const missing = await kangarooRun(dir, [...r, 'no-such-command-kangaroo']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('no-such-command-kangaroo: command not found');
    fs.writeFileSync(path.join(dir, 'not-executable'), 'data\n', { mode: 0o644 });
    const notExec = await kangarooRun(dir, [...r, path.join(dir, 'not-executable')]);
    expect(notExec.code).toBe(126);
    expect((await kangarooRun(dir, ['--relay', hop.address])).stderr).toContain('name the command to run after --');
    const echo = await kangarooRun(dir, [...r, 'cat', '-'], { input: 'through stdin\n' });
    expect(echo.stdout).toBe('through stdin\n');
    // the command's own options are not kangaroo's, and "-" stays "-"
    const args = await kangarooRun(dir, [...r, 'python3', '-c', 'import sys; print(sys.argv[1:])', '--mount', '007', '-', '--help']);
    expect(args.stdout).toBe("['--mount', '007', '-', '--help']\n");
    const child = await kangarooRun(dir, [...r, 'bash', '-c', 'sh -c "grep -c libkangaroo-preload /proc/self/maps; echo \\$KANGAROO_MOUNT"']);
    const [count, mount] = child.stdout.trim().split('\n');
    expect(Number(count)).toBeGreaterThan(0);
    expect(mount!.startsWith(dir + '/kangaroo-run-')).toBe(true);
    expect(leftovers(dir)).toEqual([]);
  });

  it('SIGTERM is passed to the command; its output is still committed and delivered before run exits 143', async () => {
    const dir = await runDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const pidFile = path.join(dir, 'cmd.pid');
    killLater(pidFile);
    const script = `echo before-signal > /kangaroo/${dest.address}/sig.txt; echo $$ > ${pidFile}; exec sleep 60`;
    const child = spawn(process.execPath, [CLI, 'run', '--relay', hop.address, '--push', '--', 'sh', '-c', script], {
      cwd: dir,
      env: { ...process.env, ...runEnv(dir) },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n'), 30_000, 'the command to start');
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'sig.txt'), 'utf8')).toBe('before-signal\n');
    expect(leftovers(dir)).toEqual([]);
  });

  it('Ctrl-C while --push waits for a destination that is down: run stops waiting, says who delivers the output, and exits with the command\'s status', async () => {
    const dir = await runDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    await dest.kill();
    const done = path.join(dir, 'command-done');
    // no relay at that address: the run's mount embeds one
    const relay = `127.0.0.1:${await freePort()}`;
    const child = spawn(process.execPath, [CLI, 'run', '--relay', relay, '--push', '--', 'sh', '-c', `echo late > /kangaroo/${dest.address}/late.txt && touch ${done}`], {
      cwd: dir,
      env: { ...process.env, ...runEnv(dir) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => fs.existsSync(done), 30_000, 'the command to finish');
    await new Promise((r) => setTimeout(r, 1000));
    expect(child.exitCode, stderr).toBeNull(); // waiting for delivery
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(0);
    expect(stderr).toMatch(/no longer waiting for delivery \(interrupted\)/);
    const bg = /a background relay \(pid (\d+)\) on \S+ is delivering it/.exec(stderr);
    expect(bg, stderr).not.toBeNull();
    onTestFinished(() => {
      try {
        process.kill(Number(bg![1]), 'SIGKILL');
      } catch {
        // gone: it exits once everything is delivered
      }
    });
    expect(leftovers(dir)).toEqual([]);
    await dest.restart();
    const delivered = path.join(dest.exportDir!, 'late.txt');
    await waitFor(() => fs.existsSync(delivered) && fs.readFileSync(delivered, 'utf8') === 'late\n', 60_000, 'late.txt delivered by the background relay');
  });

  it('killed outright (SIGKILL), it still leaves no mount: the mount commits and unmounts by itself', async () => {
    const dir = await runDir();
    const hop = await startRelay(dir, 'hop');
    const pidFile = path.join(dir, 'cmd.pid');
    killLater(pidFile);
    const child = spawn(process.execPath, [CLI, 'run', '--relay', hop.address, '--', 'sh', '-c', `echo $$ > ${pidFile}; exec sleep 60`], {
      cwd: dir,
      env: { ...process.env, ...runEnv(dir) },
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await waitFor(() => fs.existsSync(pidFile) && mountsUnder(dir).length === 1, 30_000, 'the command to start');
    child.kill('SIGKILL');
    await exited;
    await waitFor(() => mountsUnder(dir).length === 0, 30_000, 'the orphaned mount to unmount itself');
  });

  it('--mount: uses a running mount, commits (with --push, delivers) after the command and keeps the mount', async () => {
    const dir = await runDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const env = { XDG_STATE_HOME: mount.stateDir };
    const base = `/kangaroo/${dest.address}`;
    const w = await kangarooRun(dir, ['--mount', mount.mountpoint, '--push', '--verbose', '--', 'sh', '-c', `seq 1 50000 > ${base}/seq.txt; exit 4`], { env });
    expect(w.code, w.stderr).toBe(4);
    expect(w.stderr).toContain('delivered to its destination');
    const expected = Array.from({ length: 50000 }, (_, i) => `${i + 1}\n`).join('');
    expect(fs.readFileSync(path.join(dest.exportDir!, 'seq.txt'), 'utf8')).toBe(expected);
    expect(isMounted(mount.mountpoint)).toBe(true);
    // the same file, read back by literal name through the same mount
    const r = await kangarooRun(dir, ['--mount', mount.mountpoint, '--verbose', '--', 'tail', '-n', '1', `${base}/seq.txt`], { env });
    expect(r.stdout).toBe('50000\n');
    expect(r.stderr).toContain('everything written is committed');
    expect(isMounted(mount.mountpoint)).toBe(true);
    const notMount = await kangarooRun(dir, ['--mount', path.join(dir, 'elsewhere'), '--', 'true'], { env });
    expect(notMount.code).toBe(125);
    expect(notMount.stderr).toContain('is not served by a running kangaroo mount');
    const u = await mount.umount();
    expect(u.code, u.stderr).toBe(0);
  });

  it('--gns: the name service\'s names work literally too, and follow their mapping', async () => {
    const dir = await runDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const gns = path.join(dir, 'job.gns');
    const scratch = path.join(dir, 'scratch');
    fs.mkdirSync(scratch);
    // "/kangaroo-test-scratch" begins like "/kangaroo" but is not it: an ordinary name
    fs.writeFileSync(gns, `/results/ remote kangaroo://${dest.address}/mapped/\n/kangaroo-test-scratch/tmp.txt local ${scratch}/tmp.txt\n`);
    const script = 'mkdir -p /results && echo result > /results/out.txt && echo scratch > /kangaroo-test-scratch/tmp.txt && cat /results/out.txt /kangaroo-test-scratch/tmp.txt';
    const r = await kangarooRun(dir, ['--relay', hop.address, '--gns', gns, '--push', '--', 'bash', '-c', script]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('result\nscratch\n');
    expect(fs.readFileSync(path.join(dest.exportDir!, 'mapped', 'out.txt'), 'utf8')).toBe('result\n');
    expect(fs.readFileSync(path.join(scratch, 'tmp.txt'), 'utf8')).toBe('scratch\n');
    expect(fs.existsSync('/results/out.txt') && fs.readFileSync('/results/out.txt', 'utf8') === 'result\n').toBe(false);
    expect(fs.existsSync('/kangaroo-test-scratch')).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });
});

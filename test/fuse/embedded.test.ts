import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { isMounted, run, sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { CLI, freePort, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * A new user's mount: no relay is running, so the mount starts one of its own, in its
 * own process, and reaches it without a socket. Unmounting never strands what that relay holds: with --push it
 * waits for delivery; without, a background relay takes over the spool, and the
 * message says which happened and where.
 */
/** The background relay an unmount says it started (killed when the test ends, if still running). */
function backgroundRelay(unmountStderr: string): { pid: number; address: string } {
  const m = /a background relay \(pid (\d+)\) on (\S+) (?:is delivering it|carries on)/.exec(unmountStderr);
  expect(m, unmountStderr).not.toBeNull();
  const pid = Number(m![1]);
  onTestFinished(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  return { pid, address: m![2]! };
}

/** Whether a process is running (a zombie waiting for its reaper counts as gone). */
function running(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('a mount with no relay running', () => {
  it('starts an embedded relay; umount --push delivers; without --push a background relay finishes the job', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const relay = `127.0.0.1:${await freePort()}`;

    const first = await startMount(dir, 'first', { relay });
    expect(first.log()).toMatch(/started an embedded relay/);
    const one = crypto.randomBytes(5 * 1024 * 1024 + 3);
    fs.writeFileSync(path.join(dir, 'one.bin'), one);
    const remote = (m: { mountpoint: string }) => path.join(m.mountpoint, 'kangaroo', dest.address, 'embedded');
    const w1 = await sh(`mkdir -p "${remote(first)}" && cp "${dir}/one.bin" "${remote(first)}/one.bin"`, { timeoutMs: 30_000 });
    expect(w1.code, w1.stderr + first.log()).toBe(0);
    const u1 = await unmountAndCheck(first, true);
    expect(u1.code, u1.stderr + first.log()).toBe(0);
    expect(u1.stderr).toContain('delivered');
    expect(fs.readFileSync(path.join(dest.exportDir!, 'embedded/one.bin')).equals(one)).toBe(true);

    // the destination is down: the data waits in the embedded relay's spool, and outlives the mount
    await dest.kill();
    const second = await startMount(dir, 'second', { relay });
    const two = crypto.randomBytes(3 * 1024 * 1024 + 1);
    fs.writeFileSync(path.join(dir, 'two.bin'), two);
    // (with the destination down its directories cannot be looked up: the program makes its own)
    const w2 = await sh(`mkdir -p "${remote(second)}/later" && cp "${dir}/two.bin" "${remote(second)}/later/two.bin"`, { timeoutMs: 30_000 });
    expect(w2.code, w2.stderr + second.log()).toBe(0);
    const u2 = await unmountAndCheck(second, false);
    expect(u2.code, u2.stderr + second.log()).toBe(0);
    backgroundRelay(u2.stderr);
    await dest.restart();
    const delivered = path.join(dest.exportDir!, 'embedded/later/two.bin');
    await waitFor(() => fs.existsSync(delivered) && fs.statSync(delivered).size === two.length && fs.readFileSync(delivered).equals(two), 60_000, 'two.bin delivered by the background relay');
  });

  // The background relay is the embedded one carried on: it must send at the rate the user
  // capped the mount at, prove the same secret to the destination (or nothing pending is
  // ever delivered), and be answering by the time the unmount says where to watch it.
  it('the background relay keeps the mount\'s --bwlimit and secret, and answers status as soon as the unmount names it', async () => {
    const dir = await tempDir();
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, 'a shared secret for this test, long enough\n');
    const dest = await startRelay(dir, 'dest', { export: true, extra: ['--secret-file', secretFile] });
    const relay = `127.0.0.1:${await freePort()}`;
    const mount = await startMount(dir, 'capped', { relay, extra: ['--bwlimit', '1MB', '--secret-file', secretFile] });
    expect(mount.log()).toMatch(/started an embedded relay/);
    const data = crypto.randomBytes(4 * 1024 * 1024 + 5);
    fs.writeFileSync(path.join(dir, 'capped.bin'), data);
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'capped.bin');
    const w = await sh(`cp "${dir}/capped.bin" "${remote}"`, { timeoutMs: 30_000 });
    expect(w.code, w.stderr + mount.log()).toBe(0);
    // at 1 MB/s most of the 4 MiB is still spooled when the mount goes
    const u = await unmountAndCheck(mount, false);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    const background = backgroundRelay(u.stderr);
    const st = await run(process.execPath, [CLI, 'status', '--relay', background.address, '--secret-file', secretFile], { timeoutMs: 30_000 });
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/bwlimit: 976\.6 KiB\/s/);
    // a second mount finds it at the address and uses it (no embedded relay of its own)
    const next = await startMount(dir, 'next', { relay, extra: ['--secret-file', secretFile] });
    expect(next.log()).not.toMatch(/started an embedded relay/);
    const delivered = path.join(dest.exportDir!, 'capped.bin');
    await waitFor(() => fs.existsSync(delivered) && fs.statSync(delivered).size === data.length, 60_000, 'capped.bin delivered by the background relay');
    expect(fs.readFileSync(delivered).equals(data)).toBe(true);
    // its first job is done, but a mount is still connected to it: it stays for that mount's writes
    await new Promise((r) => setTimeout(r, 3000));
    expect(running(background.pid), 'the background relay left a mount that uses it').toBe(true);
    const w2 = await sh(`printf 'later' > "${path.join(next.mountpoint, 'kangaroo', dest.address, 'later.txt')}"`, { timeoutMs: 30_000 });
    expect(w2.code, w2.stderr + next.log()).toBe(0);
    const u2 = await unmountAndCheck(next, true);
    expect(u2.code, u2.stderr + next.log()).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'later.txt'), 'utf8')).toBe('later');
    // everything delivered and nobody connected: it goes
    await waitFor(() => !running(background.pid), 20_000, 'the background relay to exit after delivering everything');
  });

  // A second mount finds the first one's embedded relay at the address and uses it; when the
  // first unmounts with nothing pending, its relay must not take the second's relay away.
  it("a mount using another mount's embedded relay keeps working after that mount is unmounted", async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const relay = `127.0.0.1:${await freePort()}`;
    const first = await startMount(dir, 'first', { relay });
    expect(first.log()).toMatch(/started an embedded relay/);
    const second = await startMount(dir, 'second', { relay });
    expect(second.log()).not.toMatch(/started an embedded relay/);
    const remote = path.join(second.mountpoint, 'kangaroo', dest.address);
    const w1 = await sh(`printf 'before' > "${remote}/before.txt"`, { timeoutMs: 30_000 });
    expect(w1.code, w1.stderr + second.log()).toBe(0);
    const u1 = await unmountAndCheck(first, true);
    expect(u1.code, u1.stderr + first.log()).toBe(0);
    const background = backgroundRelay(u1.stderr);
    expect(u1.stderr).toMatch(/carries on for the 1 other client/);
    const w2 = await sh(`printf 'after' > "${remote}/after.txt" && cat "${remote}/before.txt"`, { timeoutMs: 30_000 });
    expect(w2.code, w2.stderr + second.log()).toBe(0);
    expect(w2.stdout).toBe('before');
    const u2 = await unmountAndCheck(second, true);
    expect(u2.code, u2.stderr + second.log()).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'after.txt'), 'utf8')).toBe('after');
    await waitFor(() => !running(background.pid), 20_000, 'the background relay to exit once its last client left');
  });

  // A mount killed outright (OOM killer, kill -9) leaves a dead mount point, a stale control
  // socket, and what its programs closed in its embedded relay's spool with no relay running.
  it('kangaroo umount of a killed mount detaches it and starts a relay that delivers what it had committed', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    await dest.kill(); // what is written waits in the embedded relay's spool
    const relay = `127.0.0.1:${await freePort()}`;
    const mount = await startMount(dir, 'killed', { relay });
    expect(mount.log()).toMatch(/started an embedded relay/);
    const data = crypto.randomBytes(3 * 1024 * 1024 + 11);
    fs.writeFileSync(path.join(dir, 'kept.bin'), data);
    const w = await sh(`mkdir -p "${mount.mountpoint}/kangaroo/${dest.address}/k" && cp "${dir}/kept.bin" "${mount.mountpoint}/kangaroo/${dest.address}/k/kept.bin"`, { timeoutMs: 30_000 });
    expect(w.code, w.stderr + mount.log()).toBe(0);
    // the close of a large file started the mount's stat checker (a child sh): no child may hold
    // the FUSE device, or one waiting on the mount when it dies keeps the kernel from aborting it
    const children = fs.readFileSync(`/proc/${mount.child.pid}/task/${mount.child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    expect(children.length, 'the mount has its stat checker').toBeGreaterThan(0);
    for (const c of children) {
      const fds = fs.readdirSync(`/proc/${c}/fd`).map((fd) => {
        try {
          return fs.readlinkSync(`/proc/${c}/fd/${fd}`);
        } catch {
          return '';
        }
      });
      expect(fds, `child ${c} of the mount`).not.toContain('/dev/fuse');
    }
    mount.child.kill('SIGKILL');
    await mount.exited;

    const env = { ...process.env, XDG_STATE_HOME: mount.stateDir };
    // mounting again on the dead mount point says what to do
    const again = await run(process.execPath, [CLI, 'mount', mount.mountpoint, '--relay', relay], { env, timeoutMs: 30_000 });
    expect(again.code, again.stderr).not.toBe(0);
    expect(again.stderr).toMatch(/BUSY: .* is a dead mount .*kangaroo umount/);
    const u = await mount.umount();
    expect(u.code, u.stderr).toBe(0);
    expect(isMounted(mount.mountpoint)).toBe(false);
    expect(u.stderr).toMatch(/had no serving process/);
    const background = backgroundRelay(u.stderr);
    expect(background.address).toBe(relay);
    await dest.restart();
    const delivered = path.join(dest.exportDir!, 'k/kept.bin');
    await waitFor(() => fs.existsSync(delivered) && fs.statSync(delivered).size === data.length, 60_000, 'kept.bin delivered by the relay umount started');
    expect(fs.readFileSync(delivered).equals(data)).toBe(true);
    await waitFor(() => !running(background.pid), 20_000, 'that relay to exit after delivering everything');
  });

  // `umount --push` to a destination that is down waits as long as it is down. The user
  // who gives up on it (Ctrl-C, or a plain umount from another terminal) gets the
  // unmount without push: committed, and handed to the background relay.
  for (const how of ['a plain umount', 'SIGINT to the waiting umount --push'] as const) {
    it(`an umount --push waiting for a destination that is down gives way to ${how}`, async () => {
      const dir = await tempDir();
      const dest = await startRelay(dir, 'dest', { export: true });
      await dest.kill();
      const relay = `127.0.0.1:${await freePort()}`;
      const mount = await startMount(dir, 'waiting', { relay });
      const data = crypto.randomBytes(1024 * 1024 + 13);
      fs.writeFileSync(path.join(dir, 'late.bin'), data);
      const w = await sh(`mkdir -p "${mount.mountpoint}/kangaroo/${dest.address}/w" && cp "${dir}/late.bin" "${mount.mountpoint}/kangaroo/${dest.address}/w/late.bin"`, { timeoutMs: 30_000 });
      expect(w.code, w.stderr + mount.log()).toBe(0);
      const env = { ...process.env, XDG_STATE_HOME: mount.stateDir };
      const pushing = spawn(process.execPath, [CLI, 'umount', '--push', mount.mountpoint], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      onTestFinished(() => void pushing.kill('SIGKILL'));
      let pushed = '';
      pushing.stderr!.on('data', (d) => (pushed += d));
      const pushExit = new Promise<number | null>((r) => pushing.once('exit', (code) => r(code)));
      // the mount point goes first; then it waits for delivery
      await waitFor(() => !isMounted(mount.mountpoint), 20_000, 'the mount point detached');
      await new Promise((r) => setTimeout(r, 1000));
      expect(pushing.exitCode, pushed).toBeNull();
      let said: string;
      if (how === 'a plain umount') {
        const u = await run(process.execPath, [CLI, 'umount', mount.mountpoint], { env, timeoutMs: 30_000 });
        expect(u.code, u.stderr + mount.log()).toBe(0);
        expect(u.stderr).toMatch(/stopped waiting for delivery \(a later umount without --push\)/);
        expect(await pushExit, pushed).toBe(0);
        said = u.stderr;
      } else {
        pushing.kill('SIGINT');
        await pushExit;
        await Promise.race([mount.exited, new Promise((r) => setTimeout(r, 20_000))]);
        expect(mount.child.exitCode, mount.log()).toBe(0);
        expect(mount.log()).toMatch(/stopped waiting for delivery \(the umount --push waiting for it was interrupted\)/);
        said = mount.log();
      }
      const background = backgroundRelay(said);
      await dest.restart();
      const delivered = path.join(dest.exportDir!, 'w/late.bin');
      await waitFor(() => fs.existsSync(delivered) && fs.statSync(delivered).size === data.length, 60_000, 'late.bin delivered by the background relay');
      expect(fs.readFileSync(delivered).equals(data)).toBe(true);
      await waitFor(() => !running(background.pid), 20_000, 'the background relay to exit after delivering everything');
    });
  }

  it('what a program closed survives a SIGKILL of the mount and its relay; a relay started on that spool delivers it whole', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    await dest.kill(); // everything waits in the embedded relay's spool
    const mount = await startMount(dir, 'm', { relay: `127.0.0.1:${await freePort()}` });
    expect(mount.log()).toMatch(/started an embedded relay/);
    const data = crypto.randomBytes(24 * 1024 * 1024 + 7);
    fs.writeFileSync(path.join(dir, 'in.bin'), data);
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'k');
    // 1 MiB writes: the blocks go through the pooled copies into the spool
    const w = await sh(`mkdir -p "${target}" && dd if="${dir}/in.bin" of="${target}/out.bin" bs=1M 2>&1`, { timeoutMs: 60_000 });
    expect(w.code, w.stdout + mount.log()).toBe(0);

    mount.child.kill('SIGKILL');
    await mount.exited;
    await run('fusermount', ['-u', '-z', mount.mountpoint]);
    fs.renameSync(path.join(mount.stateDir, 'kangaroo', 'spool'), path.join(dir, 'after-spool'));
    await dest.restart();
    await startRelay(dir, 'after');
    const delivered = path.join(dest.exportDir!, 'k/out.bin');
    await waitFor(() => fs.existsSync(delivered) && fs.statSync(delivered).size === data.length, 60_000, 'out.bin delivered from the spool');
    expect(fs.readFileSync(delivered).equals(data)).toBe(true);
  });
});

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { run, sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { CLI, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * What a program can rely on once a call through the mount returned:
 * close → the bytes are spooled and survive a crash of the first hop;
 * read → its own writes, before they were delivered;
 * fsync → the bytes are at the destination.
 * Every program runs in a child process; the test only reads the relays' own directories.
 */

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}

describe('durability through the mount', () => {
  it('a closed file survives a SIGKILL of the first hop and is delivered byte-identical by umount --push', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    // slow enough that most of the file is still in the hop's spool when it dies
    const hop = await startRelay(dir, 'hop', { bwlimit: '1MB' });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const input = path.join(dir, 'input.bin');
    fs.writeFileSync(input, crypto.randomBytes(5 * 1024 * 1024));
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'x');

    const w = await sh(`cat "${input}" > "${target}"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    const delivered = path.join(dest.exportDir!, 'x');
    expect(sizeOf(delivered), 'delivery was supposed to be still under way').toBeLessThan(5 * 1024 * 1024);

    await hop.restart();
    const st = await run(process.execPath, [CLI, 'status', '--relay', hop.address, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout) as { files: { host: string; path: string; pendingBytes: number }[] };
    const pendingAfterCrash = status.files.find((f) => f.path === '/x');
    // whatever had not been acknowledged by the destination is still there after the crash
    expect(pendingAfterCrash === undefined ? sizeOf(delivered) === 5 * 1024 * 1024 : pendingAfterCrash.pendingBytes > 0).toBe(true);

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(u.stderr).toContain('delivered');
    expect(sha256(fs.readFileSync(delivered))).toBe(sha256(fs.readFileSync(input)));
  });

  // The mount reuses its 1 MiB coalescing buffers once the socket has handed them to the
  // kernel. A first hop whose spool is full stops reading, so buffers wait in the socket:
  // a buffer reused any earlier would put other bytes on the wire.
  it('a writer held back by a full first-hop spool still delivers every byte as written', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '8MB', maxSpoolBytes: '6MiB' });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const input = path.join(dir, 'input.bin');
    fs.writeFileSync(input, crypto.randomBytes(40 * 1024 * 1024 + 4097));
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'held.bin');
    const w = await sh(`dd if="${input}" of="${target}" bs=1M status=none && dd if="${input}" of="${target}" bs=64k seek=100 status=none`, { timeoutMs: 60_000 });
    expect(w.code, w.stderr + mount.log()).toBe(0);
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    const want = Buffer.concat([fs.readFileSync(input).subarray(0, 100 * 64 * 1024), fs.readFileSync(input)]);
    expect(sha256(fs.readFileSync(path.join(dest.exportDir!, 'held.bin')))).toBe(sha256(want));
  });

  // The kernel keeps its page cache of a remote file across opens (re-reads come from memory);
  // it must still drop it when the file changes elsewhere, once getattr reports the change.
  it('a re-read sees a change made elsewhere (same size and larger) once the attribute timeout passed', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const mount = await startMount(dir, 'mnt', { relay: dest.address });
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'shared.txt');
    const local = path.join(dest.exportDir!, 'shared.txt');
    const first = await sh(`echo "version one" > "${remote}" && cat "${remote}" && cat "${remote}"`);
    expect(first.code, first.stderr + mount.log()).toBe(0);
    expect(first.stdout).toBe('version one\nversion one\n');
    await waitFor(() => sizeOf(local) === 12, 10_000, 'first version delivered');
    // another writer changes the file at the destination: same size, then larger
    for (const next of ['version two\n', 'version three, longer\n']) {
      await new Promise((r) => setTimeout(r, 20)); // a modification time of its own
      fs.writeFileSync(local, next);
      await new Promise((r) => setTimeout(r, 1500)); // the mount's attribute timeout is 1 s
      const again = await sh(`cat "${remote}"`);
      expect(again.code, again.stderr + mount.log()).toBe(0);
      expect(again.stdout).toBe(next);
    }
  });

  it('programs read their own writes (content, size, offsets) before the destination has them', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '256KB' });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const data = crypto.randomBytes(1024 * 1024);
    const input = path.join(dir, 'input.bin');
    fs.writeFileSync(input, data);
    const remoteDir = path.join(mount.mountpoint, 'kangaroo', dest.address, 'ryw');
    const target = path.join(remoteDir, 'data.bin');

    const w = await sh(`mkdir -p "${remoteDir}" && cp "${input}" "${target}"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);

    // three separate programs, each opening the file anew
    const sum = await sh(`cat "${target}" | sha256sum`);
    expect(sum.code, sum.stderr).toBe(0);
    expect(sum.stdout.split(' ')[0]).toBe(sha256(data));
    const ls = await sh(`ls -l "${target}"`);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split(/\s+/)[4]).toBe(String(data.length));
    const py = await run('python3', [
      '-c',
      `import sys, os
with open(sys.argv[1], 'rb') as f:
    f.seek(777_777)
    sys.stdout.write(f.read(4096).hex())
    print()
    print(os.fstat(f.fileno()).st_size)`,
      target,
    ]);
    expect(py.code, py.stderr).toBe(0);
    const [hex, size] = py.stdout.trim().split('\n');
    expect(hex).toBe(data.subarray(777_777, 777_777 + 4096).toString('hex'));
    expect(Number(size)).toBe(data.length);

    const delivered = path.join(dest.exportDir!, 'ryw', 'data.bin');
    expect(sizeOf(delivered), 'the reads must have been answered before delivery finished').toBeLessThan(data.length);

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(sha256(fs.readFileSync(delivered))).toBe(sha256(data));
  });

  it('writes not yet committed when the first hop dies are reported to the program by close, not dropped silently', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'torn.bin');
    // writes 2 MiB (the mount hands at least one put to the relay), waits for a line on stdin, writes again and closes
    const child = spawn('python3', [
      '-u',
      '-c',
      String.raw`import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, os.urandom(2 * 1024 * 1024))
print('written', flush=True)
sys.stdin.readline()
os.write(fd, b'tail')
try:
    os.close(fd)
    print('close ok')
except OSError as e:
    print('close failed', e.errno)`,
      target,
    ]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    onTestFinished(() => void child.kill('SIGKILL'));
    await waitFor(() => out.includes('written'), 60_000, 'the program to write');
    await hop.restart();
    child.stdin.end('go\n');
    expect(await exited, out).toBe(0);
    expect(out).toMatch(/close failed \d+/);
    expect(mount.log()).toContain('CONNECTION_LOST');

    // the mount itself keeps working on the new connection
    const again = await sh(`printf 'after\\n' > "${target}" && cat "${target}"`);
    expect(again.code, again.stderr + mount.log()).toBe(0);
    expect(again.stdout).toBe('after\n');
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'torn.bin'), 'utf8')).toBe('after\n');
  });

  it('fsync returns only once the destination holds every byte written before it', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    // without the push behind fsync, delivery would lag about two seconds
    const hop = await startRelay(dir, 'hop', { bwlimit: '1MB' });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const remoteDir = path.join(mount.mountpoint, 'kangaroo', dest.address, 'sync');
    const mk = await sh(`mkdir -p "${remoteDir}"`);
    expect(mk.code, mk.stderr).toBe(0);
    const delivered = path.join(dest.exportDir!, 'sync', 'out.bin');

    // the program checks the destination itself, between fsync and close, and again after a second write
    const py = await run('python3', [
      '-c',
      String.raw`import hashlib, os, sys
target, delivered = sys.argv[1], sys.argv[2]
first = os.urandom(2 * 1024 * 1024)
second = os.urandom(300_000)
fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, first)
os.fsync(fd)
with open(delivered, 'rb') as d:
    got = d.read()
print('after-first', len(got), got == first)
os.write(fd, second)
os.fsync(fd)
with open(delivered, 'rb') as d:
    got = d.read()
print('after-second', len(got), got == first + second)
os.close(fd)
print('sha', hashlib.sha256(first + second).hexdigest())`,
      path.join(remoteDir, 'out.bin'),
      delivered,
    ]);
    expect(py.code, py.stderr + mount.log()).toBe(0);
    const lines = py.stdout.trim().split('\n');
    expect(lines[0]).toBe(`after-first ${2 * 1024 * 1024} True`);
    expect(lines[1]).toBe(`after-second ${2 * 1024 * 1024 + 300_000} True`);

    const u = await unmountAndCheck(mount, false);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(sha256(fs.readFileSync(delivered))).toBe(lines[2]!.split(' ')[1]);
  });
});

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { startRelay, tempDir } from '../helpers/relay-process.js';

/**
 * Write-behind (native/write-behind.c, src/fs/write-behind.ts): the binding answers
 * writes to remote files itself and hands them to the mount in 1 MiB blocks, before
 * any other operation. These tests run real programs against both modes and check
 * what write-behind must never change: the bytes, read-your-writes, the order of
 * writes, seeks and truncates, and a bound on what the mount holds.
 */

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

// Writes with odd sizes and seeks, rewrites, truncates and reads back its own writes at
// every step (asserting them), then leaves a record of what the file must hold.
const PROGRAM = `
import os, random, sys
target, expect_path = sys.argv[1], sys.argv[2]
rnd = random.Random(7)
model = bytearray()
fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
for step in range(300):
    kind = rnd.random()
    if kind < 0.6:
        n = rnd.choice([1, 17, 4096, 65536, 131072, 200001, 1048576, 1500000])
        at = len(model) if rnd.random() < 0.7 else rnd.randrange(0, len(model) + 1)
        data = bytes(rnd.getrandbits(8) for _ in range(min(n, 64))) * (n // 64 + 1)
        data = data[:n]
        os.pwrite(fd, data, at)
        if at > len(model): model.extend(b'\\0' * (at - len(model)))
        model[at:at + n] = data
    elif kind < 0.9 and model:
        at = rnd.randrange(0, len(model))
        n = rnd.randrange(1, 300000)
        got = os.pread(fd, n, at)
        assert got == bytes(model[at:at + n]), f'step {step}: read {len(got)} bytes at {at} differ'
    elif kind < 0.95:
        size = rnd.randrange(0, len(model) + 100000)
        os.ftruncate(fd, size)
        if size < len(model): del model[size:]
        else: model.extend(b'\\0' * (size - len(model)))
    else:
        assert os.fstat(fd).st_size == len(model), f'step {step}: size {os.fstat(fd).st_size} != {len(model)}'
os.close(fd)
open(expect_path, 'wb').write(model)
`;

describe('write-behind', () => {
  for (const mode of ['behind', 'off'] as const) {
    it(`${mode === 'behind' ? 'by default writes are answered behind (the mount says so)' : 'with --no-write-behind every write waits for the mount'}; seeks, rewrites, truncates and read-backs give byte-identical files`, async () => {
      const dir = await tempDir();
      const dest = await startRelay(dir, 'dest', { export: true });
      const hop = await startRelay(dir, 'hop');
      const mount = await startMount(dir, 'mnt', { relay: hop.address, extra: mode === 'off' ? ['--no-write-behind'] : [] });
      if (mode === 'behind') expect(mount.log()).toContain('; writes behind)');
      else expect(mount.log()).not.toContain('writes behind');

      const remote = path.join(mount.mountpoint, 'kangaroo', dest.address);
      const input = path.join(dir, 'input.bin');
      fs.writeFileSync(input, crypto.randomBytes(24 * 1024 * 1024 + 12345));
      fs.writeFileSync(path.join(dir, 'program.py'), PROGRAM);
      const r = await sh(
        [
          `dd if="${input}" of="${remote}/dd4k.bin" bs=4k status=none`,
          `dd if="${input}" of="${remote}/dd1m.bin" bs=1M status=none`,
          `dd if="${input}" of="${remote}/odd.bin" bs=100003 status=none`,
          `cmp "${input}" "${remote}/odd.bin"`,
          `python3 "${dir}/program.py" "${remote}/mixed.bin" "${dir}/mixed.expected"`,
          // two files written at once, in alternating slices: blocks of both interleave
          `(for i in 0 2 4 6; do dd if="${input}" of="${remote}/a.bin" bs=1M skip=$i seek=$i count=2 conv=notrunc status=none; dd if="${input}" of="${remote}/b.bin" bs=1M skip=$i seek=$i count=2 conv=notrunc status=none; done)`,
        ].join(' && '),
        { timeoutMs: 120_000 },
      );
      expect(r.code, r.stdout + r.stderr + mount.log()).toBe(0);
      const u = await unmountAndCheck(mount, true);
      expect(u.code, u.stderr + mount.log()).toBe(0);

      const want = fs.readFileSync(input);
      const got = (name: string) => sha256(fs.readFileSync(path.join(dest.exportDir!, name)));
      for (const name of ['dd4k.bin', 'dd1m.bin', 'odd.bin']) expect(got(name), name).toBe(sha256(want));
      expect(got('mixed.bin')).toBe(sha256(fs.readFileSync(path.join(dir, 'mixed.expected'))));
      for (const name of ['a.bin', 'b.bin']) expect(got(name), name).toBe(sha256(want.subarray(0, 8 * 1024 * 1024)));
    });
  }

  // native/big-writes.c: on libfuse's own channel the kernel cut each of these writes into
  // eight 128 KiB requests and waited for the answer to each before sending the next.
  // (dd's buffer is page-aligned: a 1 MiB write is 256 pages, one request.)
  for (const mode of ['behind', 'off'] as const) {
    it(`a program's 1 MiB writes reach the mount as one request each (${mode === 'behind' ? 'write-behind' : '--no-write-behind'}), and arrive intact`, async () => {
      const [major, minor] = os.release().split('.').map(Number);
      expect(major! > 4 || (major === 4 && minor! >= 20), `kernel ${os.release()} predates FUSE_MAX_PAGES (4.20)`).toBe(true);
      const dir = await tempDir();
      const dest = await startRelay(dir, 'dest', { export: true });
      const mount = await startMount(dir, 'mnt', { relay: dest.address, extra: mode === 'off' ? ['--no-write-behind'] : [] });
      const input = path.join(dir, 'input.bin');
      fs.writeFileSync(input, crypto.randomBytes(16 * 1024 * 1024));
      const remote = path.join(mount.mountpoint, 'kangaroo', dest.address);
      const r = await sh(`dd if="${input}" of="${remote}/big.bin" bs=1M status=none`);
      expect(r.code, r.stderr + mount.log()).toBe(0);
      const u = await unmountAndCheck(mount, true);
      expect(u.code, u.stderr + mount.log()).toBe(0);
      expect(mount.log()).toContain('write requests from the kernel: 16 (16.0 MiB, largest 1.0 MiB)');
      expect(sha256(fs.readFileSync(path.join(dest.exportDir!, 'big.bin')))).toBe(sha256(fs.readFileSync(input)));
    });
  }

  // src/fs/stat.ts: python sizes a buffered file's buffer by st_blksize (128 KiB before)
  it("remote files report a 1 MiB I/O size, so python's buffered 4 KiB writes reach the mount as 1 MiB requests", async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const mount = await startMount(dir, 'mnt', { relay: dest.address });
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'small-writes.bin');
    fs.writeFileSync(
      path.join(dir, 'small-writes.py'),
      `import os, sys
f = open(sys.argv[1], 'wb')
print(os.fstat(f.fileno()).st_blksize)
for i in range(2048):
    f.write(bytes([i % 251]) * 4096)
f.close()
`,
    );
    const r = await sh(`python3 "${dir}/small-writes.py" "${target}"`);
    expect(r.code, r.stderr + mount.log()).toBe(0);
    expect(r.stdout.trim()).toBe(String(1024 * 1024));
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    // python's buffer is not page-aligned, so each 1 MiB write spans 257 pages and the kernel
    // (256 at most per request) sends it in two: 16 requests; 128 KiB writes would be 64
    const requests = /write requests from the kernel: (\d+) \(8\.0 MiB/.exec(mount.log());
    expect(requests, mount.log()).not.toBeNull();
    expect(Number(requests![1])).toBeLessThanOrEqual(16);
    const want = Buffer.concat(Array.from({ length: 2048 }, (_, i) => Buffer.alloc(4096, i % 251)));
    expect(sha256(fs.readFileSync(path.join(dest.exportDir!, 'small-writes.bin')))).toBe(sha256(want));
  });

  it('a stopped first hop holds the writer back with a bounded amount in the mount; every byte arrives once it continues', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    expect(mount.log()).toContain('writes behind');
    const input = path.join(dir, 'input.bin');
    fs.writeFileSync(input, crypto.randomBytes(200 * 1024 * 1024));
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'held.bin');
    // a small file first, so the connection and the destination's directory exist
    expect((await sh(`echo warm > "${path.dirname(target)}/warm"`)).code).toBe(0);

    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${mount.child.pid}/status`, 'utf8'))![1]) * 1024;
    // The writer opens its file while the first hop answers (open and create wait for it),
    // then waits for "go" and writes the input 1 MiB at a time.
    const go = path.join(dir, 'go');
    const writer = spawn('python3', ['-c', `
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
print('open', flush=True)
while not os.path.exists(sys.argv[3]): time.sleep(0.02)
src = open(sys.argv[2], 'rb')
while True:
    b = src.read(1 << 20)
    if not b: break
    os.write(fd, b)
os.close(fd)
`, target, input, go], { stdio: ['ignore', 'pipe', 'inherit'] });
    onTestFinished(() => {
      if (writer.exitCode === null) writer.kill('SIGKILL');
    });
    const writerDone = new Promise<number | null>((r) => writer.once('exit', (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      writer.stdout!.once('data', () => resolve());
      writer.once('exit', (code) => reject(new Error(`the writer exited with ${code} before opening its file`)));
    });
    const before = rss();
    process.kill(hop.child.pid!, 'SIGSTOP');
    onTestFinished(() => {
      if (hop.child.exitCode === null && hop.child.signalCode === null) process.kill(hop.child.pid!, 'SIGCONT');
    });
    fs.writeFileSync(go, '');
    // let the writer run into the bound
    await new Promise((r) => setTimeout(r, 3000));
    const held = rss() - before;
    expect(writer.exitCode, 'the writer finished although nothing could be sent').toBeNull();
    // 16 blocks behind, a buffer being filled, and what the socket holds: far below the 200 MiB written
    expect(held, `the mount grew by ${held} bytes while the first hop was stopped`).toBeLessThan(96 * 1024 * 1024);

    process.kill(hop.child.pid!, 'SIGCONT');
    expect(await writerDone).toBe(0);
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(sha256(fs.readFileSync(path.join(dest.exportDir!, 'held.bin')))).toBe(sha256(fs.readFileSync(input)));
  });
});

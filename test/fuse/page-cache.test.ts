import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { CLI, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * A file written through the mount keeps one modification time from its writer's
 * close to its delivery and after (RemoteFiles.unstamped), and its pages stay in
 * the kernel's page cache across opens (Operations.showAttributes): a re-read is
 * then memory speed, and tar does not find the file "changed as we read it".
 */

// Prints the share of the file's pages in the page cache, as this open finds them (mincore).
const RESIDENT = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
page = os.sysconf('SC_PAGE_SIZE')
pages = (size + page - 1) // page
addr = libc.mmap(None, size, 1, 2, fd, 0)  # PROT_READ, MAP_PRIVATE: maps the file's cached pages, touches none
if addr in (None, ctypes.c_void_p(-1).value): raise OSError(ctypes.get_errno(), 'mmap')
vec = (ctypes.c_ubyte * pages)()
if libc.mincore(addr, size, vec) != 0: raise OSError(ctypes.get_errno(), 'mincore')
print(sum(v & 1 for v in vec) / pages)
`;

describe('page cache and file times', () => {
  it('a file read once after its writer closed it is read again from the page cache (the open keeps its pages)', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '1MB' });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    fs.writeFileSync(path.join(dir, 'resident.py'), RESIDENT);
    const file = path.join(mount.mountpoint, 'kangaroo', dest.address, 'reread.bin');
    const r = await sh(
      [
        `dd if=/dev/urandom of="${file}" bs=1M count=16 status=none`,
        `cat "${file}" > /dev/null`,
        `python3 "${dir}/resident.py" "${file}"`,
      ].join(' && '),
    );
    expect(r.code, r.stderr + mount.log()).toBe(0);
    expect(Number(r.stdout.trim()), `share of pages still cached at the second open\n${mount.log()}`).toBeGreaterThan(0.95);
    await unmountAndCheck(mount, false);
  });

  it("a file's time is set at its writer's close and stays the same through delivery; a program's own time is kept", async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '2MB' });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address);
    const written = await sh(
      [
        `dd if=/dev/urandom of="${remote}/out.bin" bs=1M count=4 status=none`,
        `printf 'kept' > "${remote}/touched.txt"`,
        `touch -d '2001-08-07 12:00:00 UTC' "${remote}/touched.txt"`,
        `stat -c %.3Y "${remote}/out.bin" "${remote}/touched.txt"`,
      ].join(' && '),
    );
    expect(written.code, written.stderr + mount.log()).toBe(0);
    const [outBefore, touchedBefore] = written.stdout.trim().split('\n');
    expect(touchedBefore).toBe(`${Date.parse('2001-08-07T12:00:00Z') / 1000}.000`);

    // delivered (at 2 MB/s, seconds after the close; fsync waits for it): the same time through the mount
    const fsync = `import os, sys\nfor f in sys.argv[1:]: os.fsync(os.open(f, os.O_RDONLY))`;
    const after = await sh(`python3 -c '${fsync}' "${remote}/out.bin" "${remote}/touched.txt" && stat -c %.3Y "${remote}/out.bin" "${remote}/touched.txt"`);
    expect(after.code, after.stderr + mount.log()).toBe(0);
    expect(after.stdout.trim().split('\n')).toEqual([outBefore, touchedBefore]);
    // and at the destination; utimes takes seconds as a double: the destination's time may be a few hundred nanoseconds short
    const atDest = await sh(`stat -c %.9Y "${dest.exportDir}/out.bin" "${dest.exportDir}/touched.txt"`);
    const ms = (s: string) => (Number(s) * 1000).toFixed(0);
    expect(atDest.stdout.trim().split('\n').map(ms)).toEqual([outBefore, touchedBefore].map((s) => ms(s!)));
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr).toBe(0);
  });

  // A writer's close sends the file's time with its commit. A consumer at the destination
  // may take the file away first (it was fsync'd there): that time then has no file, and it
  // failed the close (ENOENT from a relay that is the destination) or stopped every later
  // delivery to the path at a hop (the time a permanent failure there). And the file the
  // consumer took must stay as it was when the next run writes the name again: the
  // destination kept a handle under the old name, and the next run's truncate emptied it.
  for (const via of ['a first-hop relay', 'the destination relay itself']) {
    it(`a close succeeds, the path keeps delivering and the file taken stays whole when the destination took the file away (through ${via})`, async () => {
      const dir = await tempDir();
      const dest = await startRelay(dir, 'dest', { export: true });
      const relay = via === 'a first-hop relay' ? await startRelay(dir, 'hop', {}) : dest;
      const mount = await startMount(dir, 'mnt', { relay: relay.address });
      fs.writeFileSync(
        path.join(dir, 'taken.py'),
        `import os, sys
f, at_dest = sys.argv[1], sys.argv[2]
fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'a' * 100); os.fsync(fd)
os.write(fd, b'b' * 100)
os.rename(at_dest, at_dest + '.taken')
os.close(fd)
print('closed')
`,
      );
      const file = path.join(mount.mountpoint, 'kangaroo', dest.address, 'taken');
      const atDest = path.join(dest.exportDir!, 'taken');
      const r = await sh(`python3 "${dir}/taken.py" "${file}" "${atDest}"`);
      expect(r.code, r.stderr + mount.log()).toBe(0);
      expect(r.stdout).toBe('closed\n');
      const push = await run(process.execPath, [CLI, 'push', '--relay', relay.address, `kangaroo://${dest.address}/taken`], { timeoutMs: 30_000 });
      expect(push.code, push.stderr + relay.log()).toBe(0);
      const taken = fs.readFileSync(`${atDest}.taken`);
      // the next run writes the name again
      const again = await sh(`echo new > "${file}" && python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' "${file}"`, { timeoutMs: 30_000 });
      expect(again.code, again.stderr + relay.log()).toBe(0);
      expect(fs.readFileSync(atDest, 'utf8')).toBe('new\n');
      expect(fs.readFileSync(`${atDest}.taken`).equals(taken), 'the file the consumer took changed').toBe(true);
      expect(taken.subarray(0, 100).equals(Buffer.alloc(100, 'a'))).toBe(true);
      expect(relay.log()).not.toMatch(/stopped|DELIVERY_BLOCKED/);
      await unmountAndCheck(mount, false);
    });
  }

  // The close's stat through the mount holds a thread of libuv's pool until the mount
  // answers it, and the answer for a name from the name-service file needs the pool too.
  // Closes answered together (the hop stopped while they waited for its commit, then
  // resumed) took every thread of a two-thread pool that way, and the mount never
  // answered again.
  it('closes answered together leave the mount answering when names go through the name service', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', {});
    const gns = path.join(dir, 'names.gns');
    fs.writeFileSync(gns, `/data/ remote kangaroo://${dest.address}/data\n`);
    const mount = await startMount(dir, 'mnt', { relay: hop.address, gns, env: { UV_THREADPOOL_SIZE: '2' } });
    const data = path.join(mount.mountpoint, 'data');
    expect((await sh(`mkdir -p "${data}"`)).code).toBe(0);
    // each writer writes 2 MiB, says so, and closes only when told: all closes reach the stopped hop
    fs.writeFileSync(
      path.join(dir, 'writer.py'),
      `import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'k' * (2 << 20))
open(sys.argv[2], 'w').close()
while not os.path.exists(sys.argv[3]): time.sleep(0.02)
os.close(fd)
`,
    );
    const N = 8;
    const go = path.join(dir, 'go');
    const writers = sh(`for i in $(seq ${N}); do python3 "${dir}/writer.py" "${data}/f$i" "${dir}/ready$i" "${go}" & done; wait; echo written`, { timeoutMs: 60_000 });
    await waitFor(() => fs.readdirSync(dir).filter((n) => n.startsWith('ready')).length === N, 20_000);
    hop.child.kill('SIGSTOP');
    fs.writeFileSync(go, '');
    await new Promise((r) => setTimeout(r, 1500));
    hop.child.kill('SIGCONT');
    const w = await writers;
    expect(w.stdout, w.stderr + mount.log()).toContain('written');
    const probe = await sh(`timeout 10 ls "${data}" && timeout 10 stat -c %s "${data}/f1"`, { timeoutMs: 30_000 });
    expect(probe.code, probe.stderr + mount.log()).toBe(0);
    expect(probe.stdout).toBe(`${Array.from({ length: N }, (_, i) => `f${i + 1}`).sort().join('\n')}\n${2 << 20}\n`);
    await unmountAndCheck(mount, false);
  });
});

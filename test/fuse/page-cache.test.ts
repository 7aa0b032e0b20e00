import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { startRelay, tempDir } from '../helpers/relay-process.js';

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
});

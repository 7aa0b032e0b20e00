import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sh, startMount } from '../helpers/mount-process.js';
import { startRelay, tempDir } from '../helpers/relay-process.js';

/**
 * Unmodified programs against MOUNT/kangaroo/127.0.0.1:PORT/..., with a real
 * destination relay behind a real first-hop relay. The same script also runs
 * on a plain local directory; after umount --push the destination must hold
 * exactly what the local run produced.
 */

const SCRIPT = String.raw`
set -e
cd "$1"
head -c 3000000 /dev/urandom > "$2/input.bin"
cp "$2/input.bin" copy.bin
cat copy.bin copy.bin > twice.bin
dd if="$2/input.bin" of=dd.bin bs=64k 2>/dev/null
dd if="$2/input.bin" of=dd-small.bin bs=1000 count=777 2>/dev/null
mkdir -p tree/a/b tree/c
for i in $(seq 1 40); do echo "line $i of file $i" > tree/a/f$i.txt; done
printf 'deep\n' > tree/a/b/deep.txt
head -c 200000 "$2/input.bin" > tree/c/blob
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf tree.tar tree
mkdir extracted
tar -xf tree.tar -C extracted
printf 'pear\napple\nfig\nbanana\napple\n' > fruit.txt
sort fruit.txt > sorted.txt
sort -u fruit.txt >> sorted.txt
python3 - <<'PY'
with open('seek.bin', 'wb') as f:
    f.write(b'A' * 100000)
    f.seek(50)
    f.write(b'hello')
    f.seek(200000)
    f.write(b'end')
with open('seek.bin', 'r+b') as f:
    f.seek(10)
    f.write(b'rewritten')
    f.seek(0, 2)
    f.write(b'!')
    f.truncate(150000)
with open('seek.bin', 'rb') as f:
    assert f.read(15) == b'AAAAAAAAAArewri', 'read-your-writes through the mount'
PY
rm twice.bin
`;

function tree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(root, p);
      if (e.isDirectory()) {
        out.set(rel + '/', 'dir');
        walk(p);
      } else {
        out.set(rel, crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
      }
    }
  };
  walk(root);
  return out;
}

describe('unmodified programs on the mount', () => {
  it('cp, cat, dd, tar, sort and a seeking python program give byte-identical results', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const scratch = path.join(dir, 'scratch');
    fs.mkdirSync(scratch);
    fs.mkdirSync(path.join(dir, 'local'));
    const remoteDir = path.join(mount.mountpoint, 'kangaroo', dest.address, 'job');
    const mk = await sh(`mkdir -p "${remoteDir}"`);
    expect(mk.code, mk.stderr).toBe(0);
    const viaMount = await sh(`bash -c '${SCRIPT.replace(/'/g, "'\\''")}' job "${remoteDir}" "${scratch}"`);
    expect(viaMount.code, viaMount.stderr + mount.log()).toBe(0);
    // the same input, on a local directory
    const localRun = await sh(`bash -c '${SCRIPT.replace(/'/g, "'\\''").replace('head -c 3000000 /dev/urandom > "$2/input.bin"', ':')}' job "${path.join(dir, 'local')}" "${scratch}"`);
    expect(localRun.code, localRun.stderr).toBe(0);
    const u = await mount.umount(true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(u.stderr).toContain('delivered');
    const expected = tree(path.join(dir, 'local'));
    const delivered = tree(path.join(dest.exportDir!, 'job'));
    expect([...delivered.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [k, v] of expected) expect(delivered.get(k), k).toBe(v);
  });
});

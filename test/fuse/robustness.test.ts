import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { CLI, RelaySpec, startRelay, tempDir } from '../helpers/relay-process.js';

/**
 * The mount under awkward names and failures: spaces and unicode, scratch files
 * in the backing directory (and that directory vanishing), listings of undelivered
 * files, renames across hosts, and the errno each refusal must carry.
 * Programs run in child processes; every test ends with the mount gone from
 * /proc/self/mounts.
 */

const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

/** Runs a python snippet that does one call and prints the errno name it failed with (or OK). */
async function errnoOf(call: string, ...args: string[]): Promise<string> {
  const r = await run('python3', ['-c', `import errno, os, shutil, sys\ntry:\n    ${call}\n    print('OK')\nexcept OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))`, ...args], { timeoutMs: 30_000 });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** A destination relay, a first hop in front of it and a mount on the hop, with its own backing directory. */
async function mountedChain(hopSpec: RelaySpec = {}) {
  const dir = await tempDir();
  const dest = await startRelay(dir, 'dest', { export: true });
  const hop = await startRelay(dir, 'hop', hopSpec);
  const backing = path.join(dir, 'backing');
  const mount = await startMount(dir, 'mnt', { relay: hop.address, backing });
  return { dir, dest, hop, backing, mount };
}

const FILE = 'my file ü 東京.txt';
const DIR = 'dir with space';
const RENAMED = 'renamed – ß 名前.txt';

describe('robustness of the mount', () => {
  it('names with spaces and unicode: write, ls, cat, mv, rm, remote and scratch; the destination has the right names', async () => {
    const { dest, backing, mount } = await mountedChain();
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'uni');
    const scratch = path.join(mount.mountpoint, 'scratch');

    for (const base of [remote, scratch]) {
      const script = String.raw`
set -e
cd "$1"
mkdir -p "${DIR}"
printf 'hello ü 東京\n' > "${DIR}/${FILE}"
printf 'second\n' > "${DIR}/gone soon.txt"
printf 'keep\n' > "${FILE}"
ls -1 "${DIR}"
echo ---
cat "${DIR}/${FILE}"
mv "${DIR}/${FILE}" "${DIR}/${RENAMED}"
rm "${DIR}/gone soon.txt"
echo ---
ls -1 "${DIR}"
echo ---
cat "${DIR}/${RENAMED}"
test ! -e "${DIR}/${FILE}"
`;
      const r = await sh(`mkdir -p "${base}" && bash -c '${script.replace(/'/g, "'\\''")}' s "${base}"`);
      expect(r.code, r.stderr + mount.log()).toBe(0);
      expect(r.stdout.split('---\n')).toEqual([`gone soon.txt\n${FILE}\n`, 'hello ü 東京\n', `${RENAMED}\n`, 'hello ü 東京\n']);
    }
    // the scratch side is a plain directory in the backing area
    expect(fs.readdirSync(path.join(backing, 'scratch', DIR))).toEqual([RENAMED]);
    expect(fs.readFileSync(path.join(backing, 'scratch', FILE), 'utf8')).toBe('keep\n');

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    const out = path.join(dest.exportDir!, 'uni');
    expect(fs.readdirSync(out).sort()).toEqual([DIR, FILE].sort());
    expect(fs.readdirSync(path.join(out, DIR))).toEqual([RENAMED]);
    expect(fs.readFileSync(path.join(out, DIR, RENAMED), 'utf8')).toBe('hello ü 東京\n');
    expect(fs.readFileSync(path.join(out, FILE), 'utf8')).toBe('keep\n');
  });

  it('scratch files outside kangaroo/ behave like local files in the backing directory', async () => {
    const dir = await tempDir();
    const hop = await startRelay(dir, 'hop');
    const backing = path.join(dir, 'backing');
    const mount = await startMount(dir, 'mnt', { relay: hop.address, backing });
    const m = mount.mountpoint;

    const r = await sh(String.raw`
set -e
cd "${m}"
echo first > tmp.txt
echo second >> tmp.txt
printf 'third' >> tmp.txt
cat tmp.txt
mkdir -p a/b/c
echo deep > a/b/c/f.txt
ls -1
echo ---
ls -1 a/b/c
wc -c < tmp.txt
chmod 600 tmp.txt
stat -c %a tmp.txt
`);
    expect(r.code, r.stderr + mount.log()).toBe(0);
    const [cat, rest] = r.stdout.split('---\n') as [string, string];
    expect(cat.startsWith('first\nsecond\nthird')).toBe(true);
    expect(cat.split('third')[1]!.split('\n').filter(Boolean).sort()).toEqual(['a', 'kangaroo', 'tmp.txt']);
    expect(rest.split('\n')).toEqual(['f.txt', '18', '600', '']);

    expect(fs.readFileSync(path.join(backing, 'tmp.txt'), 'utf8')).toBe('first\nsecond\nthird');
    expect(fs.readFileSync(path.join(backing, 'a/b/c/f.txt'), 'utf8')).toBe('deep\n');
    expect(fs.statSync(path.join(backing, 'tmp.txt')).mode & 0o777).toBe(0o600);

    const rm = await sh(`cd "${m}" && rm tmp.txt && rm -r a && ls -A`);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe('kangaroo\n');
    expect(fs.readdirSync(backing)).toEqual([]);

    const u = await unmountAndCheck(mount, false);
    expect(u.code, u.stderr + mount.log()).toBe(0);
  });

  it('symbolic links in the scratch area are links, as on a local disk', async () => {
    const dir = await tempDir();
    const hop = await startRelay(dir, 'hop');
    const backing = path.join(dir, 'backing');
    const mount = await startMount(dir, 'mnt', { relay: hop.address, backing });
    const r = await sh(`cd "${mount.mountpoint}" && echo target > t.txt && ln -s t.txt link.txt && cat link.txt && readlink link.txt && stat -c %F link.txt && ln -s missing dangling && ls -1 && rm link.txt dangling`);
    expect(r.code, r.stderr + mount.log()).toBe(0);
    expect(r.stdout).toBe('target\nt.txt\nsymbolic link\ndangling\nkangaroo\nlink.txt\nt.txt\n');
    expect(fs.readdirSync(backing)).toEqual(['t.txt']);
    const u = await unmountAndCheck(mount, false);
    expect(u.code, u.stderr + mount.log()).toBe(0);
  });

  it('touch -d sets the modification time of scratch and remote files', async () => {
    const { dest, backing, mount } = await mountedChain();
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address);
    const r = await sh(`cd "${mount.mountpoint}" && echo a > s.txt && touch -d @1000000000 s.txt && stat -c %Y s.txt && echo b > "${remote}/r.txt" && touch -d @1000000000 "${remote}/r.txt"`);
    expect(r.code, r.stderr + mount.log()).toBe(0);
    expect(r.stdout).toBe('1000000000\n');
    expect(Math.round(fs.statSync(path.join(backing, 's.txt')).mtimeMs / 1000)).toBe(1000000000);
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(Math.round(fs.statSync(path.join(dest.exportDir!, 'r.txt')).mtimeMs / 1000)).toBe(1000000000);
  });

  it('utime with different access and modification times sets the modification time (cp -p, tar -x, make)', async () => {
    const { dest, backing, mount } = await mountedChain();
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address);
    const py = await run('python3', [
      '-c',
      `import os, sys
for p in sys.argv[1:]:
    open(p, 'w').write('x')
    os.utime(p, (1500000000, 1200000000))
print(int(os.stat(sys.argv[1]).st_mtime))`,
      path.join(mount.mountpoint, 's.txt'),
      path.join(remote, 'r.txt'),
    ]);
    expect(py.code, py.stderr + mount.log()).toBe(0);
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(Math.round(fs.statSync(path.join(backing, 's.txt')).mtimeMs / 1000), 'scratch mtime').toBe(1200000000);
    expect(Math.round(fs.statSync(path.join(dest.exportDir!, 'r.txt')).mtimeMs / 1000), 'remote mtime').toBe(1200000000);
    expect(py.stdout.trim()).toBe('1200000000');
  });

  it('chmod and touch of a remote file show in stat before the file is delivered', async () => {
    const { dir, dest, mount } = await mountedChain({ bwlimit: '64KB' });
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'meta.bin');
    fs.writeFileSync(path.join(dir, 'input.bin'), crypto.randomBytes(1024 * 1024));
    const r = await sh(`cp "${dir}/input.bin" "${target}" && chmod 600 "${target}" && touch -d @1000000000 "${target}" && stat -c '%a %Y %s' "${target}"`);
    expect(r.code, r.stderr + mount.log()).toBe(0);
    const delivered = path.join(dest.exportDir!, 'meta.bin');
    expect(fs.existsSync(delivered) ? fs.statSync(delivered).size : -1, 'still on its way').toBeLessThan(1024 * 1024);
    expect(r.stdout.trim()).toBe(`600 1000000000 ${1024 * 1024}`);
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    const st = fs.statSync(delivered);
    expect(st.mode & 0o777).toBe(0o600);
    expect(Math.round(st.mtimeMs / 1000)).toBe(1000000000);
  });

  it('backing directory deleted while mounted: scratch files fail cleanly, remote files still work', async () => {
    const { dir, dest, backing, mount } = await mountedChain();
    const m = mount.mountpoint;
    const before = await sh(`cd "${m}" && mkdir sub && echo x > sub/f.txt && echo y > top.txt`);
    expect(before.code, before.stderr).toBe(0);

    fs.rmSync(backing, { recursive: true, force: true });

    const t0 = Date.now();
    for (const cmd of [`cat "${m}/top.txt"`, `cat "${m}/sub/f.txt"`, `ls "${m}/sub"`, `echo z > "${m}/sub/new.txt"`, `echo z > "${m}/fresh.txt"`, `echo z >> "${m}/top.txt"`, `mkdir "${m}/sub/d"`]) {
      const r = await sh(cmd, { timeoutMs: 15_000 });
      expect(r.code, `${cmd} should fail`).not.toBe(0);
      expect(r.stderr, cmd).toMatch(/No such file or directory/);
    }
    expect(Date.now() - t0, 'no hang').toBeLessThan(30_000);
    const root = await sh(`ls -A "${m}"`, { timeoutMs: 15_000 });
    expect(root.code, root.stderr).toBe(0);
    expect(root.stdout).toBe('kangaroo\n');

    const data = crypto.randomBytes(300_000);
    fs.writeFileSync(path.join(dir, 'input.bin'), data);
    const target = path.join(m, 'kangaroo', dest.address, 'still', 'works.bin');
    const remote = await sh(`mkdir -p "$(dirname "${target}")" && cp "${dir}/input.bin" "${target}" && sha256sum < "${target}"`, { timeoutMs: 30_000 });
    expect(remote.code, remote.stderr + mount.log()).toBe(0);
    expect(remote.stdout.split(' ')[0]).toBe(sha256(data));

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(sha256(fs.readFileSync(path.join(dest.exportDir!, 'still', 'works.bin')))).toBe(sha256(data));
  });

  it('ls of a remote directory lists files still undelivered', async () => {
    const { dir, dest, mount } = await mountedChain({ bwlimit: '64KB' });
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'listing');
    const big = crypto.randomBytes(1024 * 1024);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);

    const w = await sh(`mkdir -p "${remote}/sub dir" && cp "${dir}/big.bin" "${remote}/big.bin" && for i in 1 2 3; do echo "small $i" > "${remote}/small $i.txt"; done && echo deep > "${remote}/sub dir/deep.txt"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    const ls = await sh(`ls -1 "${remote}" && echo --- && ls -l "${remote}/big.bin" && ls "${remote}/sub dir"`);
    expect(ls.code, ls.stderr + mount.log()).toBe(0);
    const [names, details] = ls.stdout.split('---\n') as [string, string];
    expect(names.trim().split('\n')).toEqual(['big.bin', 'small 1.txt', 'small 2.txt', 'small 3.txt', 'sub dir']);
    expect(details.split('\n')[0]!.split(/\s+/)[4]).toBe(String(big.length));
    expect(details.split('\n')[1]).toBe('deep.txt');
    const deliveredBig = path.join(dest.exportDir!, 'listing', 'big.bin');
    const deliveredSize = fs.existsSync(deliveredBig) ? fs.statSync(deliveredBig).size : -1;
    expect(deliveredSize, 'big.bin was still on its way when ls listed it').toBeLessThan(big.length);

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(sha256(fs.readFileSync(deliveredBig))).toBe(sha256(big));
    expect(fs.readdirSync(path.join(dest.exportDir!, 'listing')).sort()).toEqual(['big.bin', 'small 1.txt', 'small 2.txt', 'small 3.txt', 'sub dir']);
  });


  it('mv of a delivered file while the hop is busy: ls, stat and cat see the new name at once', async () => {
    const { dir, dest, hop, mount } = await mountedChain({ bwlimit: '1MB' });
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'mv');
    const url = `kangaroo://${dest.address}/mv/a.txt`;
    let r = await sh(`mkdir -p "${remote}" && echo hello > "${remote}/a.txt"`);
    expect(r.code, r.stderr).toBe(0);
    const push = await run(process.execPath, [CLI, 'push', '--relay', hop.address, url]);
    expect(push.code, push.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'mv', 'a.txt'), 'utf8')).toBe('hello\n');
    // a big file ahead in the queue keeps the rename in the spool for seconds
    fs.writeFileSync(path.join(dir, 'big.bin'), crypto.randomBytes(5 * 1024 * 1024));
    r = await sh(`cp "${dir}/big.bin" "${remote}/big.bin" && mv "${remote}/a.txt" "${remote}/b.txt" && LC_ALL=C ls "${remote}" && stat -c %s "${remote}/b.txt" && cat "${remote}/b.txt" && test ! -e "${remote}/a.txt"`);
    expect(r.code, r.stderr + mount.log()).toBe(0);
    expect(r.stdout).toBe('b.txt\nbig.bin\n6\nhello\n');
    expect(fs.existsSync(path.join(dest.exportDir!, 'mv', 'b.txt')), 'the rename was still on its way').toBe(false);
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(fs.readdirSync(path.join(dest.exportDir!, 'mv')).sort()).toEqual(['b.txt', 'big.bin']);
  });

  // On a local disk an open file is the file, whatever its name becomes: a log rotated
  // under its writer, a directory renamed around an open file, a file removed while open
  // (libfuse renames it to .fuse_hidden* until the last close). Writes through the mount
  // went on to the old name instead, bringing it back with a hole where the first bytes were.
  for (const via of ['a first-hop relay', 'the destination relay itself']) {
    it(`writes after a rename or rm of the open file follow the file, as on a local disk (through ${via})`, async () => {
      const dir = await tempDir();
      const dest = await startRelay(dir, 'dest', { export: true });
      const relay = via === 'a first-hop relay' ? await startRelay(dir, 'hop', {}) : dest;
      const mount = await startMount(dir, 'mnt', { relay: relay.address });
      const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'follow');
      fs.writeFileSync(
        path.join(dir, 'follow.py'),
        `import os, sys, time
d = sys.argv[1]
os.makedirs(d + '/dir')
log = os.open(d + '/log', os.O_WRONLY | os.O_CREAT, 0o644)
inner = os.open(d + '/dir/inner', os.O_WRONLY | os.O_CREAT, 0o644)
gone = os.open(d + '/gone', os.O_RDWR | os.O_CREAT, 0o644)
os.write(log, b'first\\n'); os.write(inner, b'a'); os.write(gone, b'x')
os.rename(d + '/log', d + '/log.1')
os.rename(d + '/dir', d + '/dir2')
os.unlink(d + '/gone')
os.write(log, b'second\\n'); os.write(inner, b'b'); os.write(gone, b'y')
print(os.pread(gone, 10, 0))
for fd in (log, inner, gone): os.close(fd)
# the kernel sends the last close of a file to the mount after close() returns, and
# libfuse removes the .fuse_hidden name only then: give it a moment, as any FUSE mount
for _ in range(100):
    if not any(n.startswith('.fuse_hidden') for n in os.listdir(d)): break
    time.sleep(0.05)
print(sorted(os.listdir(d)), sorted(os.listdir(d + '/dir2')))
print(open(d + '/log.1').read() + open(d + '/dir2/inner').read())
`,
      );
      const r = await sh(`python3 "${dir}/follow.py" "${remote}"`);
      expect(r.code, r.stderr + mount.log()).toBe(0);
      expect(r.stdout).toBe("b'xy'\n['dir2', 'log.1'] ['inner']\nfirst\nsecond\nab\n");
      const u = await unmountAndCheck(mount, true);
      expect(u.code, u.stderr + mount.log()).toBe(0);
      const at = path.join(dest.exportDir!, 'follow');
      expect(fs.readdirSync(at).sort()).toEqual(['dir2', 'log.1']);
      expect(fs.readFileSync(path.join(at, 'log.1'), 'utf8')).toBe('first\nsecond\n');
      expect(fs.readFileSync(path.join(at, 'dir2', 'inner'), 'utf8')).toBe('ab');
    });
  }

  // Handles move with a rename when it is sent; if the relay then refuses it (here the
  // destination itself: a directory renamed onto a non-empty one), they must move back,
  // or the program's next writes would land under a name that never came to be.
  it('a refused rename leaves open files where they were', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const mount = await startMount(dir, 'mnt', { relay: dest.address });
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'refused');
    fs.writeFileSync(
      path.join(dir, 'refused.py'),
      `import errno, os, sys
d = sys.argv[1]
os.makedirs(d + '/a'); os.makedirs(d + '/b')
open(d + '/b/keep', 'w').close()
f = os.open(d + '/a/f', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(f, b'first\\n')
try:
    os.rename(d + '/a', d + '/b')
    print('renamed')
except OSError as e:
    print(errno.errorcode[e.errno])
os.write(f, b'second\\n')
os.close(f)
print(sorted(os.listdir(d)), sorted(os.listdir(d + '/a')), sorted(os.listdir(d + '/b')))
print(open(d + '/a/f').read(), end='')
`,
    );
    const r = await sh(`python3 "${dir}/refused.py" "${remote}"`);
    expect(r.code, r.stderr + mount.log()).toBe(0);
    expect(r.stdout).toBe("ENOTEMPTY\n['a', 'b'] ['f'] ['keep']\nfirst\nsecond\n");
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    const at = path.join(dest.exportDir!, 'refused');
    expect(fs.readFileSync(path.join(at, 'a', 'f'), 'utf8')).toBe('first\nsecond\n');
    expect(fs.readdirSync(path.join(at, 'b'))).toEqual(['keep']);
  });

  it('write, mv and rm while the relay delivers: ls never loses or resurrects a file, rm always removes it', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    // two hops: both relays answer reads by joining their spool with the next hop's answer
    const middle = await startRelay(dir, 'middle');
    const hop = await startRelay(dir, 'hop', { routes: [`${dest.address}=${middle.address}`] });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address, 'churn');
    // each round: a new file, renamed, the previous round's file removed, then a listing
    // (the mover delivers the earlier rounds meanwhile: every answer mixes spool and destination)
    const r = await sh(
      String.raw`mkdir -p "$1" && cd "$1" && for i in $(seq 1 600); do
  echo "$i" > "a$i" && mv "a$i" "b$i" && rm -f "b$((i-1))" || exit 1
  l=$(ls | tr '\n' ' ')
  [ "$l" = "b$i " ] || echo "round $i: ls shows [$l]"
done
cat b600`.replace(/\$1/g, remote),
      { timeoutMs: 300_000 },
    );
    expect(r.code, r.stderr + mount.log()).toBe(0);
    expect(r.stdout).toBe('600\n');
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(fs.readdirSync(path.join(dest.exportDir!, 'churn')), 'rm -f of a just-renamed file must remove it').toEqual(['b600']);
  });

  it('rename across hosts fails with EXDEV, so mv copies; the result is correct on both hosts', async () => {
    const dir = await tempDir();
    const one = await startRelay(dir, 'one', { export: true });
    const two = await startRelay(dir, 'two', { export: true });
    const hop = await startRelay(dir, 'hop');
    const backing = path.join(dir, 'backing');
    const mount = await startMount(dir, 'mnt', { relay: hop.address, backing });
    const a = path.join(mount.mountpoint, 'kangaroo', one.address);
    const b = path.join(mount.mountpoint, 'kangaroo', two.address);
    const data = crypto.randomBytes(700_000);
    fs.writeFileSync(path.join(dir, 'input.bin'), data);

    const w = await sh(`mkdir -p "${a}/src" "${b}/dst" && cp "${dir}/input.bin" "${a}/src/${FILE}" && echo scratch > "${mount.mountpoint}/scratch.txt"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    expect(await errnoOf('os.rename(sys.argv[1], sys.argv[2])', `${a}/src/${FILE}`, `${b}/dst/x`)).toBe('EXDEV');
    expect(await errnoOf('os.rename(sys.argv[1], sys.argv[2])', `${mount.mountpoint}/scratch.txt`, `${b}/dst/scratch.txt`), 'scratch → remote').toBe('EXDEV');

    const mv = await sh(`mv "${a}/src/${FILE}" "${b}/dst/${RENAMED}" && mv "${mount.mountpoint}/scratch.txt" "${b}/dst/" && ls -A "${a}/src" && sha256sum < "${b}/dst/${RENAMED}"`);
    expect(mv.code, mv.stderr + mount.log()).toBe(0);
    expect(mv.stdout.trim().split(' ')[0]).toBe(sha256(data));
    expect(fs.readdirSync(backing)).toEqual([]);

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(sha256(fs.readFileSync(path.join(two.exportDir!, 'dst', RENAMED)))).toBe(sha256(data));
    expect(fs.readFileSync(path.join(two.exportDir!, 'dst', 'scratch.txt'), 'utf8')).toBe('scratch\n');
    expect(fs.readdirSync(path.join(one.exportDir!, 'src'))).toEqual([]);
  });

  it('refusals carry the right errno: ENOTEMPTY, ENOENT, bad host names; the mount stays usable', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const mount = await startMount(dir, 'mnt', { relay: hop.address });
    const remote = path.join(mount.mountpoint, 'kangaroo', dest.address);
    const w = await sh(`mkdir -p "${remote}/full/inner" "${remote}/empty" && echo x > "${remote}/full/file.txt"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);

    expect(await errnoOf('os.rmdir(sys.argv[1])', `${remote}/full`)).toBe('ENOTEMPTY');
    const rmdir = await sh(`rmdir "${remote}/full"`);
    expect(rmdir.code).not.toBe(0);
    expect(rmdir.stderr).toMatch(/Directory not empty/);
    expect(await errnoOf('os.unlink(sys.argv[1])', `${remote}/nope.txt`)).toBe('ENOENT');
    const rm = await sh(`rm "${remote}/nope.txt"`);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toMatch(/No such file or directory/);
    expect(await errnoOf('os.unlink(sys.argv[1])', `${remote}/full`)).toMatch(/^(EISDIR|EPERM)$/);
    expect(await errnoOf('os.rmdir(sys.argv[1])', `${remote}/full/file.txt`)).toBe('ENOTDIR');
    expect(await errnoOf('os.mkdir(sys.argv[1])', `${remote}/full`)).toBe('EEXIST');
    expect(await errnoOf('os.rename(sys.argv[1], sys.argv[2])', `${remote}/nope.txt`, `${remote}/other.txt`)).toBe('ENOENT');
    expect(await errnoOf('open(sys.argv[1], "rb")', `${remote}/nope.txt`)).toBe('ENOENT');
    expect(await errnoOf('os.rmdir(sys.argv[1])', `${remote}/empty`)).toBe('OK');

    const bad = path.join(mount.mountpoint, 'kangaroo', 'not a host!');
    for (const call of ['open(sys.argv[1] + "/x", "wb").close()', 'open(sys.argv[1] + "/x", "rb")', 'os.listdir(sys.argv[1])', 'os.mkdir(sys.argv[1])', 'os.makedirs(sys.argv[1] + "/y")', 'os.stat(sys.argv[1] + "/x")']) {
      // an unparsable host name is no entry of kangaroo/, like any other missing name
      expect(await errnoOf(call, bad), call).toBe('ENOENT');
    }
    const shell = await sh(`echo hi > "${bad}/x"`, { timeoutMs: 15_000 });
    expect(shell.code).not.toBe(0);
    expect(shell.stderr.length).toBeGreaterThan(0);

    // still usable after all those refusals
    const ok = await sh(`ls -A "${remote}" && cat "${remote}/full/file.txt"`);
    expect(ok.code, ok.stderr + mount.log()).toBe(0);
    expect(ok.stdout).toBe('full\nx\n');

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(fs.readdirSync(dest.exportDir!).sort()).toEqual(['full']);
    expect(fs.readdirSync(path.join(dest.exportDir!, 'full')).sort()).toEqual(['file.txt', 'inner']);
  });

  // umount finds the mount's process by a control socket under the state directory. Run with
  // another one (another user, another XDG_STATE_HOME) it must not take a live mount for a
  // crashed one and detach it: the process still holds writes it has not committed.
  it('umount from another state directory leaves a live mount alone and says why; a crashed mount is detached', async () => {
    const { dir, dest, mount } = await mountedChain();
    const target = path.join(mount.mountpoint, 'kangaroo', dest.address, 'kept.txt');
    const other = { XDG_STATE_HOME: path.join(dir, 'another-state') };
    const refused = await run(process.execPath, [CLI, 'umount', mount.mountpoint], { env: other });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('served by a running process');
    expect(refused.stderr).toContain('XDG_STATE_HOME');
    // still mounted and served
    const w = await sh(`echo still here > "${target}" && cat "${target}"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    expect(w.stdout).toBe('still here\n');

    // a mount whose process died: the same command detaches it
    mount.child.kill('SIGKILL');
    await mount.exited;
    const detached = await run(process.execPath, [CLI, 'umount', mount.mountpoint], { env: other });
    expect(detached.code, detached.stderr).toBe(0);
    expect(detached.stderr).toContain('detached the dead mount');
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(` ${mount.mountpoint} `);
  });
});

import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sh } from '../helpers/mount-process.js';
import { CLI, startRelay } from '../helpers/relay-process.js';
import { kangarooRun, leftovers, runDir, runEnv, SHIM } from './kangaroo-run.js';

/**
 * Unmodified programs using the literal name /kangaroo/127.0.0.1:PORT/... under
 * `kangaroo run`, with a destination relay behind a first-hop relay: no mount at
 * the root, no path under a mount point anywhere in the commands. After
 * `kangaroo run --push` returns, the destination's export must hold exactly the
 * bytes the programs wrote, and what they read back must be what was written.
 */

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

const SCRIPT = String.raw`
set -e
R=/kangaroo/$DEST/job
mkdir -p $R/tree/a
cp "$IN/input.bin" $R/cp.bin
cat $R/cp.bin $R/cp.bin > $R/twice.bin
cat $R/cp.bin > "$OUT/cat-back.bin"
dd if="$IN/input.bin" of=$R/dd.bin bs=64k 2>/dev/null
dd if=$R/dd.bin of="$OUT/dd-back.bin" bs=1000 2>/dev/null
for i in $(seq 1 20); do echo "line $i" > $R/tree/a/f$i.txt; done
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$IN" -cf $R/src.tar src
mkdir $R/extracted
tar -xf $R/src.tar -C $R/extracted
printf 'pear\napple\nfig\nbanana\n' > $R/fruit.txt
sort $R/fruit.txt -o $R/sorted.txt
sort -r $R/fruit.txt > "$OUT/sorted-r.txt"
test -s $R/sorted.txt
ls $R/tree/a | sort > "$OUT/listing.txt"
python3 - <<'PY'
import os
dest = os.environ['DEST']
data = open(os.environ['IN'] + '/input.bin', 'rb').read()
with open(f'/kangaroo/{dest}/job/py.bin', 'wb') as f:
    f.write(data[:100000])
    f.write(data[100000:])
with open(f'/kangaroo/{dest}/job/py.bin', 'rb') as f:
    assert f.read() == data, 'python read back what it wrote'
assert os.stat(f'/kangaroo/{dest}/job/py.bin').st_size == len(data)
assert 'py.bin' in os.listdir(f'/kangaroo/{dest}/job')
assert os.path.isdir(f'/kangaroo/{dest}/job/tree')
# the shim rewrites in per-call buffers: threads opening different names at once each get their own
import threading
errors = []
def worker(i):
    name = f'/kangaroo/{dest}/job/thread-{i}.bin'
    try:
        for _ in range(5):
            with open(name, 'wb') as f:
                f.write(data[i * 1000:(i + 1) * 1000])
            with open(name, 'rb') as f:
                assert f.read() == data[i * 1000:(i + 1) * 1000], name
            os.stat(name)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
PY
"$PROG" "$IN/input.bin" $R/c-plain.bin > "$OUT/c-plain.txt"
"$PROG_FORTIFIED" "$IN/input.bin" $R/c-fortified.bin > "$OUT/c-fortified.txt"
`;

function tree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(root, p), sha(fs.readFileSync(p)));
    }
  };
  walk(root);
  return out;
}

/** The test's C program, built twice: plain, and fortified with 64-bit file offsets (open → __open64_2, stat → stat64). */
function buildCProgram(dir: string): { plain: string; fortified: string } {
  const src = path.join(__dirname, 'fopen-stat.c');
  const plain = path.join(dir, 'fopen-stat');
  const fortified = path.join(dir, 'fopen-stat-fortified');
  execFileSync('cc', ['-O0', '-o', plain, src]);
  execFileSync('cc', ['-O2', '-D_FORTIFY_SOURCE=2', '-D_FILE_OFFSET_BITS=64', '-o', fortified, src]);
  return { plain, fortified };
}

describe('unmodified programs with literal /kangaroo/HOST/PATH names under kangaroo run', () => {
  it('cat, cp, dd, tar, sort, python3 open() and a C program (fopen, stat) write and read byte-identical files', async () => {
    expect(fs.existsSync(SHIM), `${SHIM} is not built (node scripts/build-native.cjs)`).toBe(true);
    const dir = await runDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const input = path.join(dir, 'in');
    const out = path.join(dir, 'out');
    fs.mkdirSync(path.join(input, 'src', 'deep'), { recursive: true });
    fs.mkdirSync(out);
    const data = crypto.randomBytes(1_500_000);
    fs.writeFileSync(path.join(input, 'input.bin'), data);
    for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(input, 'src', `s${i}.txt`), `source file ${i}\n`.repeat(i + 1));
    fs.writeFileSync(path.join(input, 'src', 'deep', 'blob'), data.subarray(0, 70_000));
    const c = buildCProgram(dir);

    const r = await kangarooRun(dir, ['--relay', hop.address, '--push', '--', 'bash', '-c', SCRIPT], {
      env: { DEST: dest.address, IN: input, OUT: out, PROG: c.plain, PROG_FORTIFIED: c.fortified },
    });
    expect(r.code, r.stderr + hop.log()).toBe(0);
    expect(leftovers(dir)).toEqual([]);

    // what the programs read back through the literal names
    expect(sha(fs.readFileSync(path.join(out, 'cat-back.bin')))).toBe(sha(data));
    expect(sha(fs.readFileSync(path.join(out, 'dd-back.bin')))).toBe(sha(data));
    expect(fs.readFileSync(path.join(out, 'sorted-r.txt'), 'utf8')).toBe('pear\nfig\nbanana\napple\n');
    expect(fs.readFileSync(path.join(out, 'listing.txt'), 'utf8').trim().split('\n')).toHaveLength(20);
    for (const f of ['c-plain.txt', 'c-fortified.txt']) {
      expect(fs.readFileSync(path.join(out, f), 'utf8')).toBe(
        `copied ${data.length} stat ${data.length} lstat ${data.length} xstat ${data.length} regular 1\nread back identical\nlisted yes\n`,
      );
    }

    // what reached the destination
    const job = path.join(dest.exportDir!, 'job');
    for (const f of ['cp.bin', 'dd.bin', 'py.bin', 'c-plain.bin', 'c-fortified.bin']) expect(sha(fs.readFileSync(path.join(job, f))), f).toBe(sha(data));
    for (let i = 0; i < 8; i++) expect(sha(fs.readFileSync(path.join(job, `thread-${i}.bin`)))).toBe(sha(data.subarray(i * 1000, (i + 1) * 1000)));
    expect(sha(fs.readFileSync(path.join(job, 'twice.bin')))).toBe(sha(Buffer.concat([data, data])));
    for (let i = 1; i <= 20; i++) expect(fs.readFileSync(path.join(job, 'tree', 'a', `f${i}.txt`), 'utf8')).toBe(`line ${i}\n`);
    expect(fs.readFileSync(path.join(job, 'sorted.txt'), 'utf8')).toBe('apple\nbanana\nfig\npear\n');
    const localTar = execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', input, '-cf', '-', 'src']);
    expect(sha(fs.readFileSync(path.join(job, 'src.tar')))).toBe(sha(localTar));
    expect(tree(path.join(job, 'extracted', 'src'))).toEqual(tree(path.join(input, 'src')));
  });

  it('programs run directly (no shell) and the relay comes from KANGAROO_RELAY, as for every command', async () => {
    const dir = await runDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const data = crypto.randomBytes(400_000);
    const src = path.join(dir, 'src.bin');
    fs.writeFileSync(src, data);
    const env = { KANGAROO_RELAY: hop.address };
    const base = `/kangaroo/${dest.address}`;
    const steps: string[][] = [
      ['mkdir', '-p', `${base}/direct`],
      ['cp', src, `${base}/direct/cp.bin`],
      ['dd', `if=${src}`, `of=${base}/direct/dd.bin`, 'bs=4096', 'status=none'],
      ['python3', '-c', `import shutil; shutil.copyfile(${JSON.stringify(src)}, ${JSON.stringify(`${base}/direct/py.bin`)})`],
    ];
    for (const step of steps) {
      const r = await kangarooRun(dir, ['--verbose', '--', ...step], { env });
      expect(r.code, `${step.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stderr, 'the mount used the relay KANGAROO_RELAY names').toContain(`relay ${hop.address}`);
    }
    // read back as a program's standard output (redirected by a shell that is not under the shim)
    const cat = await sh(`"${process.execPath}" "${CLI}" run -- cat "${base}/direct/cp.bin" > "${dir}/cat.out"`, { cwd: dir, env: runEnv(dir, env) });
    expect(cat.code, cat.stderr).toBe(0);
    expect(sha(fs.readFileSync(path.join(dir, 'cat.out')))).toBe(sha(data));
    const sums = await kangarooRun(dir, ['--push', '--', 'sha256sum', `${base}/direct/cp.bin`, `${base}/direct/dd.bin`, `${base}/direct/py.bin`], { env });
    expect(sums.code, sums.stderr).toBe(0);
    for (const line of sums.stdout.trim().split('\n')) expect(line.split(/\s+/)[0]).toBe(sha(data));
    for (const f of ['cp.bin', 'dd.bin', 'py.bin']) expect(sha(fs.readFileSync(path.join(dest.exportDir!, 'direct', f))), f).toBe(sha(data));
    expect(leftovers(dir)).toEqual([]);
  });
});

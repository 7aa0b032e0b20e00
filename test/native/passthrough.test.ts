import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../helpers/mount-process.js';
import { startRelay } from '../helpers/relay-process.js';
import { kangarooRun, leftovers, runDir, SHIM } from './kangaroo-run.js';

/**
 * Programs that never use /kangaroo/ names behave exactly as without the shim:
 * the same script runs plainly, under `kangaroo run` (shim active, mount
 * started), and with the shim preloaded but no KANGAROO_MOUNT (inactive). Its
 * standard output, standard error and exit status must be identical, and so must
 * the files it writes. It reads system files, lists directories, hits errors
 * (missing files, a directory opened as a file) and writes a local tree.
 */

const SCRIPT = String.raw`
cd "$WORK"
ls -la /etc
ls -lR /usr/share/common-licenses 2>&1 | head -200
sha256sum /etc/passwd /etc/hostname /bin/ls /usr/bin/env
stat -c '%n %s %F %a %h %u' /etc/hostname /usr/bin /etc/passwd /nonexistent
cat /nonexistent-kangaroo-test-file; echo "cat status $?"
cat /etc; echo "cat dir status $?"
find /usr/share/common-licenses -maxdepth 1 | sort
sort /etc/passwd | head -5 | cut -d: -f1,3
dd if=/etc/passwd bs=7 status=none | sha256sum
mkdir -p "$OUT/tree/a/b"
for i in 1 2 3; do echo "file $i" > "$OUT/tree/a/f$i"; done
cp -r "$OUT/tree" "$OUT/tree-copy"
mv "$OUT/tree-copy/a/f1" "$OUT/tree-copy/a/moved"
rm "$OUT/tree-copy/a/f2"
ln -s f3 "$OUT/tree-copy/a/link"
readlink "$OUT/tree-copy/a/link"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$OUT" -cf - tree tree-copy | sha256sum
(cd "$OUT" && find . | sort)
touch -d @1000000000 "$OUT/tree/a/f1" && stat -c '%Y' "$OUT/tree/a/f1"
test -w /etc/passwd; echo "writable $?"
python3 - <<'PY'
import errno, hashlib, json, os
out = {}
out['passwd'] = hashlib.sha256(open('/etc/passwd', 'rb').read()).hexdigest()
out['listing'] = sorted(os.listdir('/usr/share/common-licenses'))
st = os.stat('/etc/hostname')
out['stat'] = [st.st_size, st.st_mode, st.st_nlink]
out['realpath'] = os.path.realpath('/usr/bin/../bin/env')
out['exists'] = [os.path.exists(p) for p in ['/etc', '/nonexistent', 'relative/nope']]
for p in ['/nonexistent/file', '/etc/passwd/x', '/' + 'x' * 5000]:
    try:
        open(p)
    except OSError as e:
        out.setdefault('errors', []).append(errno.errorcode[e.errno])
with open(os.path.join(os.environ['OUT'], 'py.txt'), 'w') as f:
    f.write('written by python\n')
out['cwd'] = os.getcwd()
print(json.dumps(out, sort_keys=True))
PY
echo "script done"
exit 3
`;

function files(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(root, p);
      if (e.isSymbolicLink()) out[rel] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) walk(p);
      else out[rel] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(root);
  return out;
}

describe('programs that use no /kangaroo/ names behave exactly as without the shim', () => {
  it('same output, errors, exit status and files: plain, under kangaroo run, and with the shim inactive', async () => {
    expect(fs.existsSync(SHIM), `${SHIM} is not built (node scripts/build-native.cjs)`).toBe(true);
    const dir = await runDir();
    const hop = await startRelay(dir, 'hop');
    const work = path.join(dir, 'work');
    fs.mkdirSync(work);
    const variants = {
      plain: (env: NodeJS.ProcessEnv) => run('bash', ['-c', SCRIPT], { cwd: dir, env }),
      'kangaroo run': (env: NodeJS.ProcessEnv) => kangarooRun(dir, ['--relay', hop.address, '--', 'bash', '-c', SCRIPT], { env }),
      'shim without KANGAROO_MOUNT': (env: NodeJS.ProcessEnv) => run('bash', ['-c', SCRIPT], { cwd: dir, env: { ...env, LD_PRELOAD: SHIM, KANGAROO_MOUNT: '' } }),
    };
    const results: Record<string, { code: number; stdout: string; stderr: string; files: Record<string, string> }> = {};
    for (const [name, start] of Object.entries(variants)) {
      // the same output directory name each time (the script prints paths below it)
      const out = path.join(work, 'out');
      const r = await start({ WORK: work, OUT: out });
      results[name] = { ...r, files: files(out) };
      fs.renameSync(out, path.join(work, `done-${name.replace(/ /g, '-')}`));
    }
    const plain = results.plain!;
    expect(plain.code).toBe(3);
    expect(plain.stdout).toContain('script done');
    expect(plain.stdout).toContain('"errors": ["ENOENT", "ENOTDIR", "ENAMETOOLONG"]');
    expect(plain.stderr).toContain('No such file or directory');
    expect(Object.keys(plain.files).length).toBeGreaterThan(5);
    for (const name of ['kangaroo run', 'shim without KANGAROO_MOUNT']) {
      const r = results[name]!;
      expect(r.stdout, name).toBe(plain.stdout);
      expect(r.stderr, name).toBe(plain.stderr);
      expect(r.code, name).toBe(plain.code);
      expect(r.files, name).toEqual(plain.files);
    }
    expect(leftovers(dir)).toEqual([]);
  });
});

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../helpers/mount-process.js';
import { startRelay, tempDir } from '../helpers/relay-process.js';
import { ROOT } from './kangaroo-run.js';

/**
 * The shim is built by the project's own install (scripts/build-native.cjs, run
 * by `npm ci` and scripts/setup.sh). Each case works on a copy of the package
 * in a temporary directory, so the real native/build is never touched.
 */

/** The libc entry points programs bind for names (coreutils, python, bash, fortified and pre-2.33 binaries). */
const EXPECTED_SYMBOLS = [
  'open', 'open64', 'openat', 'openat64', '__open_2', '__open64_2', '__openat_2', '__openat64_2', 'creat', 'creat64',
  'fopen', 'fopen64', 'freopen', 'freopen64', 'opendir', 'stat', 'stat64', 'lstat', 'lstat64', 'fstatat', 'fstatat64',
  '__xstat', '__xstat64', '__lxstat', '__lxstat64', '__fxstatat', '__fxstatat64', 'statx', 'access', 'faccessat',
  'euidaccess', 'mkdir', 'mkdirat', 'rmdir', 'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2', 'truncate',
  'truncate64', 'chdir', 'readlink', 'readlinkat', 'realpath', 'utimensat', 'chmod', 'fchmodat', 'getxattr', 'lgetxattr',
];

/** A copy of the package without native/build: what a fresh checkout holds. */
function packageCopy(dir: string, withDist: boolean): string {
  const pkg = path.join(dir, 'pkg');
  fs.mkdirSync(path.join(pkg, 'scripts'), { recursive: true });
  fs.mkdirSync(path.join(pkg, 'native'));
  fs.copyFileSync(path.join(ROOT, 'scripts', 'build-native.cjs'), path.join(pkg, 'scripts', 'build-native.cjs'));
  for (const f of ['Makefile', 'kangaroo-preload.c', 'fuse-native-patches.cjs', 'write-behind.c', 'big-writes.c']) fs.copyFileSync(path.join(ROOT, 'native', f), path.join(pkg, 'native', f));
  if (withDist) {
    fs.cpSync(path.join(ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
  }
  return pkg;
}

/** A PATH with node and nothing else: no compiler, no make. */
function nodeOnlyPath(dir: string): string {
  const bin = path.join(dir, 'node-only-bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  return bin;
}

describe('building the preload shim', () => {
  it('the install builds it with make and a compiler, exporting the entry points programs use; a second run finds it up to date', async () => {
    const dir = await tempDir();
    const pkg = packageCopy(dir, false);
    const first = await run(process.execPath, [path.join(pkg, 'scripts', 'build-native.cjs'), 'shim']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('built the preload shim');
    const so = path.join(pkg, 'native', 'build', 'libkangaroo-preload.so');
    const exported = new Set(
      execFileSync('nm', ['-D', '--defined-only', so])
        .toString()
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[2]),
    );
    for (const s of EXPECTED_SYMBOLS) expect(exported.has(s), s).toBe(true);
    // only the wrappers: no helper leaks into programs' symbol lookup
    expect([...exported].filter((s) => s && s.startsWith('kg_'))).toEqual([]);
    expect(fs.readdirSync(path.join(pkg, 'native', 'build'))).toEqual(['libkangaroo-preload.so']);
    const second = await run(process.execPath, [path.join(pkg, 'scripts', 'build-native.cjs'), 'shim']);
    expect(second.stderr).toContain('up to date');
  });

  it('without a compiler or make the install still succeeds and says what is missing', async () => {
    const dir = await tempDir();
    const pkg = packageCopy(dir, false);
    const noCc = await run(process.execPath, [path.join(pkg, 'scripts', 'build-native.cjs'), 'shim'], { env: { CC: path.join(dir, 'no-such-cc') } });
    expect(noCc.code).toBe(0);
    expect(noCc.stderr).toContain('no C compiler');
    expect(noCc.stderr).toContain('kangaroo run');
    expect(noCc.stderr).toContain('everything else works');
    const noMake = await run(process.execPath, [path.join(pkg, 'scripts', 'build-native.cjs'), 'shim'], { env: { PATH: nodeOnlyPath(dir) } });
    expect(noMake.code).toBe(0);
    expect(noMake.stderr).toContain('make not found');
    expect(fs.existsSync(path.join(pkg, 'native', 'build'))).toBe(false);
  });

  it('where the shim is not built, kangaroo run says so and exits 125; the other commands still work', async () => {
    const dir = await tempDir();
    const pkg = packageCopy(dir, true);
    const cli = path.join(pkg, 'dist', 'cli', 'main.js');
    const env = { XDG_STATE_HOME: path.join(dir, 'state'), TMPDIR: dir };
    const r = await run(process.execPath, [cli, 'run', '--', 'true'], { env });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('the preload shim is not built');
    expect(r.stderr).toContain('node scripts/build-native.cjs');
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('kangaroo-run-'))).toEqual([]);

    const relay = await startRelay(dir, 'dest', { export: true });
    fs.writeFileSync(path.join(dir, 'in.txt'), 'still works\n');
    const put = await run(process.execPath, [cli, 'put', '--relay', relay.address, path.join(dir, 'in.txt'), `kangaroo://${relay.address}/in.txt`], { env });
    expect(put.code, put.stderr).toBe(0);
    const get = await run(process.execPath, [cli, 'get', '--relay', relay.address, `kangaroo://${relay.address}/in.txt`, path.join(dir, 'back.txt')], { env });
    expect(get.code, get.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'back.txt'), 'utf8')).toBe('still works\n');
  });
});

describe('the allocator tuning module', () => {
  it('the install builds it; a relay loads it and says so in its debug log', async () => {
    const dir = await tempDir();
    const pkg = packageCopy(dir, false);
    fs.copyFileSync(path.join(ROOT, 'native', 'malloc-tuning.c'), path.join(pkg, 'native', 'malloc-tuning.c'));
    const r = await run(process.execPath, [path.join(pkg, 'scripts', 'build-native.cjs')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('built the allocator tuning module');
    const module = path.join(pkg, 'native', 'build', 'kangaroo-malloc.node');
    // mallopt takes the values: the module is a working Node-API module, not just a file
    const tuned = await run(process.execPath, ['-e', `process.stdout.write(String(require(${JSON.stringify(module)}).tune(32 << 20, 256 << 20, 64 << 20)))`]);
    expect(tuned.stdout, tuned.stderr).toBe('true');

    // the project's own relays (started from dist/) load the project's build of it
    expect(fs.existsSync(path.join(ROOT, 'native', 'build', 'kangaroo-malloc.node'))).toBe(true);
    const relay = await startRelay(dir, 'relay');
    expect(relay.log()).toContain('allocator tuned for 1 MiB buffers');
  });
});

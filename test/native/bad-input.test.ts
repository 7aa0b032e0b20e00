import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../helpers/mount-process.js';
import { startRelay } from '../helpers/relay-process.js';
import { kangarooRun, leftovers, runDir, SHIM } from './kangaroo-run.js';

/**
 * Bad names under the shim give a clear errno and never a crash: a /kangaroo/
 * name with no host, names too long once rewritten, and relative names (left
 * alone: "kangaroo/x" is a local file). Checked from python (os calls), from a C
 * program (fopen, stat) and from coreutils.
 */

const PY = String.raw`
import errno, json, os, sys
dest, long1, long2 = sys.argv[1:4]
def attempt(fn):
    try:
        fn()
        return 'OK'
    except OSError as e:
        return errno.errorcode[e.errno]
cases = {
    'no host, open': lambda: open('/kangaroo//x').close(),
    'no host, create': lambda: open('/kangaroo//x', 'w').close(),
    'no host, stat': lambda: os.stat('/kangaroo//etc/passwd'),
    'no host, mkdir': lambda: os.mkdir('/kangaroo//newdir'),
    'hosts, stat': lambda: os.stat('/kangaroo/'),
    'hosts, listdir': lambda: os.listdir('/kangaroo'),
    '5000 chars, open': lambda: open(long1).close(),
    '5000 chars, create': lambda: open(long1, 'w').close(),
    '5000 chars, stat': lambda: os.stat(long1),
    '5000 chars, mkdir': lambda: os.makedirs(long1),
    '5000 chars, rename': lambda: os.rename(long1, f'/kangaroo/{dest}/x'),
    'fits only before rewriting, open': lambda: open(long2).close(),
    'fits only before rewriting, unlink': lambda: os.unlink(long2),
    'relative, read': lambda: open('kangaroo/x').read() == 'local\n' or sys.exit('relative name was rewritten'),
    'relative, stat': lambda: os.stat('kangaroo/x'),
    'missing remote file': lambda: open(f'/kangaroo/{dest}/no/such/file').close(),
}
print(json.dumps({k: attempt(f) for k, f in cases.items()}, sort_keys=True))
print(os.path.isdir('/kangaroo'), os.path.isdir('/kangaroo/'), open('/kangaroo/../etc/hostname').read() == open('/etc/hostname').read())
`;

describe('bad names under the shim: a clear errno, no crash', () => {
  it('no host, too long, relative, missing: python, a C program and coreutils', async () => {
    expect(fs.existsSync(SHIM), `${SHIM} is not built (node scripts/build-native.cjs)`).toBe(true);
    const dir = await runDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    fs.mkdirSync(path.join(dir, 'kangaroo'));
    fs.writeFileSync(path.join(dir, 'kangaroo', 'x'), 'local\n');
    const long1 = `/kangaroo/${dest.address}/${'a'.repeat(5000)}`;
    // under PATH_MAX as the program wrote it; over it with the mount point in front
    const long2 = `/kangaroo/${dest.address}/${'b/'.repeat(2040)}`.slice(0, 4090);
    expect(long2.length).toBeLessThan(4096);

    const py = await kangarooRun(dir, ['--relay', hop.address, '--', 'python3', '-c', PY, dest.address, long1, long2]);
    expect(py.code, py.stderr).toBe(0);
    const [json, last] = py.stdout.trim().split('\n');
    expect(JSON.parse(json!)).toEqual({
      'no host, open': 'ENOENT',
      'no host, create': 'ENOENT',
      'no host, stat': 'ENOENT',
      'no host, mkdir': 'ENOENT',
      'hosts, stat': 'OK',
      'hosts, listdir': 'OK',
      '5000 chars, open': 'ENAMETOOLONG',
      '5000 chars, create': 'ENAMETOOLONG',
      '5000 chars, stat': 'ENAMETOOLONG',
      '5000 chars, mkdir': 'ENAMETOOLONG',
      '5000 chars, rename': 'ENAMETOOLONG',
      'fits only before rewriting, open': 'ENAMETOOLONG',
      'fits only before rewriting, unlink': 'ENAMETOOLONG',
      'relative, read': 'OK',
      'relative, stat': 'OK',
      'missing remote file': 'ENOENT',
    });
    expect(last).toBe('True True True');

    const prog = path.join(dir, 'fopen-stat');
    execFileSync('cc', ['-O2', '-D_FORTIFY_SOURCE=2', '-D_FILE_OFFSET_BITS=64', '-o', prog, path.join(__dirname, 'fopen-stat.c')]);
    const c = await kangarooRun(dir, ['--relay', hop.address, '--', prog, 'errno', '/kangaroo//x', long1, long2, 'kangaroo/x', `/kangaroo/${dest.address}/missing`]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout.trim().split('\n')).toEqual([
      'fopen=ENOENT stat=ENOENT',
      'fopen=ENAMETOOLONG stat=ENAMETOOLONG',
      'fopen=ENAMETOOLONG stat=ENAMETOOLONG',
      'fopen=OK stat=OK',
      'fopen=ENOENT stat=ENOENT',
    ]);

    // coreutils report the errno in their usual words and exit 1, not by a signal
    for (const [args, words] of [
      [['cat', '/kangaroo//x'], 'No such file or directory'],
      [['cat', long1], 'File name too long'],
      [['ls', long2], 'File name too long'],
      [['cp', '/etc/hostname', long1], 'File name too long'],
    ] as const) {
      const r = await kangarooRun(dir, ['--relay', hop.address, '--', ...args]);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(args[0] === 'ls' ? 2 : 1);
      expect(r.stderr).toContain(words);
    }
    const rel = await kangarooRun(dir, ['--relay', hop.address, '--', 'cat', 'kangaroo/x']);
    expect(rel.stdout).toBe('local\n');
    expect(leftovers(dir)).toEqual([]);
  });

  it('without KANGAROO_MOUNT the shim leaves /kangaroo/ names alone', async () => {
    const dir = await runDir();
    const py = `import os\ntry:\n  os.stat('/kangaroo/127.0.0.1:1/x')\n  print('exists')\nexcept OSError as e:\n  print(e.errno)`;
    const plain = await run('python3', ['-c', py]);
    const preloaded = await run('python3', ['-c', py], { env: { LD_PRELOAD: SHIM, KANGAROO_MOUNT: '' } });
    expect(preloaded).toEqual(plain);
    // a relative KANGAROO_MOUNT is not a mount point: also ignored
    const relative = await run('python3', ['-c', py], { cwd: dir, env: { LD_PRELOAD: SHIM, KANGAROO_MOUNT: 'mnt' } });
    expect(relative).toEqual(plain);
  });
});

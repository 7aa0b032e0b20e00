import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KangarooError } from '../../src/errors.js';
import { OrderedOp } from '../../src/protocol/messages.js';
import { ExportRoot } from '../../src/relay/export.js';

const HOST = '127.0.0.1:9';

let base: string; // holds the export and things outside it
let rootDir: string;
let root: ExportRoot;

beforeEach(async () => {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'kangaroo-export-')));
  rootDir = path.join(base, 'export');
  root = new ExportRoot(rootDir);
  await root.init();
});

afterEach(async () => {
  await root.close();
  fs.rmSync(base, { recursive: true, force: true });
});

const put = (p: string, offset: number, data: string): OrderedOp => ({ type: 'put', seq: 0, host: HOST, path: p, offset, data: Buffer.from(data) });
const truncate = (p: string, size: number): OrderedOp => ({ type: 'truncate', seq: 0, host: HOST, path: p, size });
const mkdir = (p: string): OrderedOp => ({ type: 'mkdir', seq: 0, host: HOST, path: p, mode: 0o755 });
const unlink = (p: string): OrderedOp => ({ type: 'unlink', seq: 0, host: HOST, path: p });
const rmdir = (p: string): OrderedOp => ({ type: 'rmdir', seq: 0, host: HOST, path: p });
const rename = (p: string, to: string): OrderedOp => ({ type: 'rename', seq: 0, host: HOST, path: p, to });

const local = (p: string) => path.join(rootDir, p);
const code = (c: string) => expect.objectContaining({ code: c });

function isEscape(err: unknown): boolean {
  return err instanceof KangarooError && err.code === 'PATH_ESCAPE';
}

describe('ExportRoot', () => {
  // put creates missing parent directories and writes at the given offset (a hole reads as zeros).
  it('puts at offsets, creating parents', async () => {
    await root.apply(put('/x/y/z/file', 4, 'data'));
    await root.apply(put('/x/y/z/file', 0, 'AB'));
    expect(fs.readFileSync(local('x/y/z/file'))).toEqual(Buffer.from('AB\0\0data'));
    expect(fs.statSync(local('x/y')).isDirectory()).toBe(true);
  });

  // truncate shrinks and extends, and creates a missing file.
  it('truncates', async () => {
    await root.apply(put('/t', 0, 'abcdefgh'));
    await root.apply(truncate('/t', 3));
    expect(fs.readFileSync(local('t')).toString()).toBe('abc');
    await root.apply(truncate('/t', 5));
    expect(fs.readFileSync(local('t'))).toEqual(Buffer.from('abc\0\0'));
    await root.apply(truncate('/new/empty', 0));
    expect(fs.statSync(local('new/empty')).size).toBe(0);
  });

  // Replays are harmless: mkdir twice, unlink/rmdir of missing entries, and a rename already done.
  it('accepts replayed operations', async () => {
    await root.apply(mkdir('/d/e'));
    await root.apply(mkdir('/d/e'));
    expect(fs.statSync(local('d/e')).isDirectory()).toBe(true);
    await root.apply(unlink('/missing'));
    await root.apply(unlink('/no/such/dir/missing'));
    await root.apply(rmdir('/missing-dir'));

    await root.apply(put('/src', 0, 'moved'));
    await root.apply(rename('/src', '/dst/renamed'));
    expect(fs.existsSync(local('src'))).toBe(false);
    expect(fs.readFileSync(local('dst/renamed')).toString()).toBe('moved');
    // the same rename again (source gone, target there) counts as done
    await root.apply(rename('/src', '/dst/renamed'));
    expect(fs.readFileSync(local('dst/renamed')).toString()).toBe('moved');
  });

  // A rename with neither source nor target is a real error, not a silent success.
  it('fails a rename whose source and target are both missing', async () => {
    await expect(root.apply(rename('/nope', '/also-nope'))).rejects.toEqual(code('NOT_FOUND'));
  });

  // mkdir over a file, and put onto a directory or the root, fail with stable codes.
  it('refuses type clashes', async () => {
    await root.apply(put('/file', 0, 'x'));
    await expect(root.apply(mkdir('/file'))).rejects.toSatisfy((e: unknown) => e instanceof KangarooError && ['NOT_DIR', 'EXISTS'].includes(e.code));
    await root.apply(mkdir('/dir'));
    await expect(root.apply(put('/dir', 0, 'x'))).rejects.toEqual(code('IS_DIR'));
    await expect(root.apply(put('/', 0, 'x'))).rejects.toEqual(code('IS_DIR'));
  });

  // The export root itself is never removed or replaced, however the path names it ('/', '/a/..').
  it('never removes the export root', async () => {
    for (const p of ['/', '/a/..', '//.']) {
      await expect(root.apply(rmdir(p)), p).rejects.toEqual(code('IS_DIR'));
      await expect(root.apply(unlink(p)), p).rejects.toEqual(code('IS_DIR'));
      expect(fs.statSync(rootDir).isDirectory()).toBe(true);
    }
    await root.apply(put('/file', 0, 'x'));
    await expect(root.apply(rename('/file', '/'))).rejects.toEqual(code('IS_DIR'));
    expect(fs.statSync(rootDir).isDirectory()).toBe(true);
  });

  // Unlink removes a file even while a handle to it is open from an earlier put.
  it('unlinks and rmdirs', async () => {
    await root.apply(put('/gone/f', 0, 'x'));
    await root.apply(unlink('/gone/f'));
    expect(fs.existsSync(local('gone/f'))).toBe(false);
    await root.apply(rmdir('/gone'));
    expect(fs.existsSync(local('gone'))).toBe(false);
    await root.apply(put('/full/f', 0, 'x'));
    await expect(root.apply(rmdir('/full'))).rejects.toEqual(code('NOT_EMPTY'));
  });

  describe('confinement', () => {
    // `..` that climbs above the root is refused lexically.
    it('refuses .. escaping the root', async () => {
      await expect(root.resolve('/../outside')).rejects.toSatisfy(isEscape);
      await expect(root.resolve('/a/../../outside')).rejects.toSatisfy(isEscape);
      await expect(root.apply(put('/../../etc/passwd-kangaroo', 0, 'x'))).rejects.toSatisfy(isEscape);
      // `..` that stays inside is fine
      expect(await root.resolve('/a/b/../c')).toBe(path.join(rootDir, 'a/c'));
    });

    // A symlink inside the export that points outside is refused, for reads and writes, and nothing leaks out.
    it('refuses a symlink pointing outside', async () => {
      const outside = path.join(base, 'outside');
      fs.mkdirSync(outside);
      fs.writeFileSync(path.join(outside, 'secret'), 'secret');
      fs.symlinkSync(outside, local('link'));
      await expect(root.resolve('/link')).rejects.toSatisfy(isEscape);
      await expect(root.resolve('/link/secret')).rejects.toSatisfy(isEscape);
      await expect(root.resolve('/link/new/deeper')).rejects.toSatisfy(isEscape);
      await expect(root.read('/link/secret', 0, 10)).rejects.toSatisfy(isEscape);
      await expect(root.apply(put('/link/planted', 0, 'x'))).rejects.toSatisfy(isEscape);
      await expect(root.apply(unlink('/link/secret'))).rejects.toSatisfy(isEscape);
      await expect(root.apply(rename('/link/secret', '/stolen'))).rejects.toSatisfy(isEscape);
      expect(fs.existsSync(path.join(outside, 'planted'))).toBe(false);
      expect(fs.existsSync(path.join(outside, 'secret'))).toBe(true);
    });

    // A directory whose name merely starts with the root's name is still outside.
    it('refuses a symlink to a sibling sharing the root name as prefix', async () => {
      const sibling = `${rootDir}-sibling`;
      fs.mkdirSync(sibling);
      fs.symlinkSync(sibling, local('sib'));
      await expect(root.resolve('/sib/x')).rejects.toSatisfy(isEscape);
    });

    // A dangling symlink could be created outside on write: refused.
    it('refuses a dangling symlink', async () => {
      fs.symlinkSync(path.join(base, 'does-not-exist'), local('dangling'));
      await expect(root.resolve('/dangling')).rejects.toSatisfy(isEscape);
      await expect(root.apply(put('/dangling', 0, 'x'))).rejects.toSatisfy(isEscape);
      expect(fs.existsSync(path.join(base, 'does-not-exist'))).toBe(false);
    });

    // A symlink loop is refused rather than hanging or crashing.
    it('refuses a symlink loop', async () => {
      fs.symlinkSync(local('loop2'), local('loop1'));
      fs.symlinkSync(local('loop1'), local('loop2'));
      await expect(root.resolve('/loop1/x')).rejects.toSatisfy(isEscape);
    });

    // A symlink that stays inside the export is followed.
    it('allows a symlink pointing inside', async () => {
      await root.apply(put('/real/f', 0, 'inside'));
      fs.symlinkSync(local('real'), local('alias'));
      expect((await root.read('/alias/f', 0, 100)).toString()).toBe('inside');
    });

    // NUL in a path is a bad path, not a crash.
    it('refuses NUL bytes', async () => {
      await expect(root.resolve('/a\0b')).rejects.toEqual(code('BAD_PATH'));
    });
  });

  // read, stat and list report what is on disk; missing entries are NOT_FOUND.
  it('reads, stats and lists', async () => {
    await root.apply(put('/dir/a', 0, 'hello world'));
    await root.apply(mkdir('/dir/sub'));
    expect((await root.read('/dir/a', 6, 100)).toString()).toBe('world');
    expect((await root.read('/dir/a', 0, 5)).toString()).toBe('hello');
    expect((await root.read('/dir/a', 50, 5)).length).toBe(0);
    await root.close();
    // reads without an open handle too
    root = new ExportRoot(rootDir);
    await root.init();
    expect((await root.read('/dir/a', 0, 100)).toString()).toBe('hello world');

    expect(await root.stat('/dir/a')).toMatchObject({ kind: 'file', size: 11 });
    expect(await root.stat('/dir')).toMatchObject({ kind: 'dir' });
    expect(await root.stat('/')).toMatchObject({ kind: 'dir' });
    const entries = await root.list('/dir');
    expect(entries.map((e) => [e.name, e.kind]).sort()).toEqual([
      ['a', 'file'],
      ['sub', 'dir'],
    ]);
    await expect(root.stat('/nope')).rejects.toEqual(code('NOT_FOUND'));
    await expect(root.read('/nope', 0, 1)).rejects.toEqual(code('NOT_FOUND'));
    await expect(root.list('/nope')).rejects.toEqual(code('NOT_FOUND'));
    await expect(root.read('/dir', 0, 1)).rejects.toEqual(code('IS_DIR'));
  });

  // commit() and push() flush without throwing, whether or not anything is dirty or open.
  it('commits and pushes', async () => {
    await root.commit();
    await root.apply(put('/c/f', 0, 'x'));
    await root.apply(mkdir('/c/d'));
    await root.push('/c/f');
    await root.push('/c/not-open');
    await root.apply(rename('/c/f', '/c/g'));
    await root.commit();
    await root.commit();
    expect(fs.readFileSync(local('c/g')).toString()).toBe('x');
  });

  // commit() and push() promise that earlier writes are fsync'd. A commit still running took the dirty
  // file; a second commit, or a push of that file, finds it clean and must still not answer before
  // the first commit's fsync of it is done: the first commit answers first.
  it('a commit or push answers only after an earlier commit still fsyncing what it covers', async () => {
    const data = Buffer.alloc(1024 * 1024, 7);
    await root.apply(put('/big.bin', 0, 'x'));
    await root.commit(); // from here on only the file's data is dirty, no directory
    const orders: Record<string, string[]> = {};
    for (const second of ['commit', 'push'] as const) {
      for (let i = 0; i < 24; i++) await root.apply({ type: 'put', seq: 0, host: HOST, path: '/big.bin', offset: i * data.length, data });
      const order: string[] = (orders[second] = []);
      const first = root.commit().then(() => order.push('first commit'));
      const then = (second === 'commit' ? root.commit() : root.push('/big.bin')).then(() => order.push(second));
      await Promise.all([first, then]);
    }
    expect(orders).toEqual({ commit: ['first commit', 'commit'], push: ['first commit', 'push'] });
  });

  // More files than the handle cache holds: evicted handles are synced and closed, data intact.
  it('keeps data intact across handle eviction', async () => {
    for (let i = 0; i < 80; i++) await root.apply(put(`/many/f${i}`, 0, `file ${i}`));
    for (let i = 0; i < 80; i++) await root.apply(put(`/many/f${i}`, 100, '!'));
    await root.commit();
    for (let i = 0; i < 80; i++) {
      const got = fs.readFileSync(local(`many/f${i}`));
      expect(got.subarray(0, `file ${i}`.length).toString()).toBe(`file ${i}`);
      expect(got.length).toBe(101);
    }
  });

  // Handles are kept open between puts and keyed by name: renaming a directory must not leave
  // its files reachable under their old names, or the next file there would be written into them.
  it('after a directory is renamed, writes to the old names make new files; the moved ones keep their data', async () => {
    await root.apply(put('/run/a/out.dat', 0, 'first run'));
    await root.apply(put('/run/a/deep/log', 0, 'first log'));
    await root.apply(rename('/run/a', '/run/b'));
    await root.apply(put('/run/a/out.dat', 0, 'second'));
    await root.apply(put('/run/a/deep/log', 0, 'second log'));
    await root.commit();
    expect(fs.readFileSync(local('run/b/out.dat')).toString()).toBe('first run');
    expect(fs.readFileSync(local('run/b/deep/log')).toString()).toBe('first log');
    expect(fs.readFileSync(local('run/a/out.dat')).toString()).toBe('second');
    expect(fs.readFileSync(local('run/a/deep/log')).toString()).toBe('second log');
  });

  // The same for a file replaced by a rename onto its name.
  it('a file replaced by a rename onto its name is not written through its old handle', async () => {
    await root.apply(put('/x', 0, 'old x'));
    await root.apply(put('/y', 0, 'new'));
    await root.apply(rename('/y', '/x'));
    await root.apply(put('/x', 3, '!'));
    await root.commit();
    expect(fs.readFileSync(local('x')).toString()).toBe('new!');
  });
});

describe('handles closed by one connection while another waits on them', () => {
  // A put looks at its file's handle, then waits (once per commit it checks the name still
  // leads to the same file). An unlink on another connection closed that handle meanwhile,
  // and the put put it back in the table closed: later puts failed with "file closed" and the
  // next commit reported the destination's disk as failed for good.
  it('a put racing an unlink of its file never revives the closed handle', async () => {
    for (let i = 0; i < 200; i++) {
      await root.apply(put('race.bin', 0, 'first'));
      await root.commit();
      // the put waits in its name check while the unlink closes the handle
      const racing = Promise.allSettled([root.apply(put('race.bin', 0, 'second')), root.apply(unlink('race.bin'))]);
      await racing;
      await root.apply(put('race.bin', 0, 'third'));
      await root.commit();
      expect(fs.readFileSync(local('race.bin'), 'utf8').slice(0, 5)).toBe('third');
    }
  });
});

describe('reads racing a rename or unlink of their file', () => {
  it('a read finds the file or finds it gone, never its handle closed under it', async () => {
    for (let i = 0; i < 200; i++) {
      await root.apply(put('gone.bin', 0, 'data'));
      const [read] = await Promise.allSettled([root.read('gone.bin', 0, 4), root.apply(unlink('gone.bin'))]);
      if (read.status === 'fulfilled') expect(read.value.toString()).toBe('data');
      else expect(read.reason).toEqual(code('NOT_FOUND'));
    }
  });
});

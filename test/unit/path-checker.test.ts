import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PathChecker } from '../../src/fs/path-checker.js';

/** The child process that stats paths for the mount (src/fs/path-checker.ts). */
describe('path checker', () => {
  it('answers every check in order, for paths that exist and that do not, from one child', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kangaroo-checker-'));
    const checker = new PathChecker();
    try {
      const names = ['a file', ' leading space', 'back\\slash', 'missing'];
      for (const n of names.slice(0, 3)) fs.writeFileSync(path.join(dir, n), 'x');
      const order: string[] = [];
      await Promise.all(names.map((n) => checker.check(path.join(dir, n)).then(() => order.push(n))));
      expect(order).toEqual(names);
      // a name with a newline cannot go on a line: answered at once, and the next still works
      await checker.check(path.join(dir, 'new\nline'));
      await checker.check(dir);
    } finally {
      checker.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers a check left waiting when it is stopped, and starts afresh after', async () => {
    const checker = new PathChecker();
    // stopped right after asking: the child is killed before it can answer
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kangaroo-checker-'));
    try {
      const pending = checker.check(dir);
      checker.stop();
      await pending;
      await checker.check(dir);
    } finally {
      checker.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectWriter } from '../../src/spool/direct-writer.js';
import { Journal } from '../../src/spool/journal.js';

const run = promisify(execFile);
const dirs: string[] = [];

function tmpDir(): string {
  // under the working directory, not /tmp: a tmpfs there refuses O_DIRECT and the writer would not be used
  const d = fs.mkdtempSync(path.join(process.cwd(), '.test-direct-'));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function openWriter(file: string): Promise<DirectWriter> {
  const w = await DirectWriter.open(file);
  expect(w, 'this file system takes O_DIRECT').toBeDefined();
  return w!;
}

function stagingOf(w: DirectWriter): Buffer {
  return (w as unknown as { staging: Buffer }).staging;
}

describe('DirectWriter', () => {
  // The staging buffer goes back to a shared pool on close: closing twice must not put it
  // there twice, or two later writers would write from the same memory.
  it('closing twice returns its staging buffer to the pool once', async () => {
    const dir = tmpDir();
    const w = await openWriter(path.join(dir, 'a'));
    await w.write([Buffer.from('x')]);
    await Promise.all([w.close(), w.close()]);
    await w.close();
    const a = await openWriter(path.join(dir, 'b'));
    const b = await openWriter(path.join(dir, 'c'));
    expect(stagingOf(a).buffer).not.toBe(stagingOf(b).buffer);
    await Promise.all([a.close(), b.close()]);
  });

  // A close that comes while a write is on its way to the disk waits for it: the file keeps
  // every byte, and no other writer gets the staging buffer the disk is still reading.
  it('a close during a write waits for it and keeps the staging buffer until then', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'seg');
    const w = await openWriter(file);
    const data = crypto.randomBytes(9 << 20);
    const writing = w.write([data]);
    const closing = w.close();
    const other = await openWriter(path.join(dir, 'other'));
    expect(stagingOf(other).buffer).not.toBe(stagingOf(w).buffer);
    await writing;
    await closing;
    await other.close();
    expect(fs.readFileSync(file).equals(data)).toBe(true);
    await expect(w.write([Buffer.from('late')])).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('Journal close', () => {
  // An append made while close() is syncing used to restart the write loop on a writer the
  // close then closed under it. Appends from the start of close are refused; every record
  // accepted before it is on disk.
  it('refuses appends once close has begun and keeps every record accepted before', async () => {
    const dir = tmpDir();
    const { journal } = await Journal.open(dir, 1 << 20, () => []);
    const before = [crypto.randomBytes(10_000), crypto.randomBytes(3 << 20), crypto.randomBytes(500)];
    for (const b of before) journal.append(1, [b]);
    const closing = journal.close();
    expect(() => journal.append(1, [Buffer.from('late')])).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    await closing;
    const reopened = await Journal.open(dir, 1 << 20, () => []);
    expect(reopened.records.map((r) => r.payload.length)).toEqual(before.map((b) => b.length));
    reopened.records.forEach((r, i) => expect(r.payload.equals(before[i]!)).toBe(true));
    await reopened.journal.close();
  });

  // A process under `ulimit -v` cannot reserve the staging memory (a WebAssembly memory
  // reserves far more address space than it uses): the journal writes through the page
  // cache instead of failing every write.
  it('writes through the page cache when no staging memory can be had', async () => {
    const dir = tmpDir();
    const journalUrl = new URL('../../dist/spool/journal.js', import.meta.url).href;
    const script = `
      const { Journal } = await import(${JSON.stringify(journalUrl)});
      const dir = process.argv[1];
      const { journal } = await Journal.open(dir, 1 << 20, () => []);
      journal.append(1, [Buffer.from('hello')]);
      await journal.sync();
      journal.append(1, [Buffer.from('again')]);
      await journal.close();
      const { records } = await Journal.open(dir, 1 << 20, () => []);
      console.log(records.map((r) => r.payload.toString()).join(','));
      let staging = 'had';
      try { new WebAssembly.Memory({ initial: 64 }); } catch { staging = 'none'; }
      console.log('staging memory: ' + staging);
    `;
    const { stdout } = await run('bash', ['-c', 'ulimit -v 4000000 && exec node --input-type=module -e "$0" "$1"', script, dir]);
    // the limit really took the staging memory away, and both records were written
    expect(stdout).toContain('staging memory: none');
    expect(stdout).toContain('hello,again');
  });
});

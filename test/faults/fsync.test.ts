import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectRetry, failuresOf, mountFailingDisk, statusOf } from '../helpers/fault-kit.js';
import { closedPort, startRelay, tempDir } from '../helpers/relay-process.js';

/**
 * A spool whose disk fails an fsync. After a failed fsync the kernel may have dropped
 * the unwritten pages and marked them clean, so a later fsync succeeds without the
 * data: a commit after the failure must fail too, not promise what may not be on disk.
 */

describe('a spool disk that fails an fsync', () => {
  it('refuses every later commit, even once fsync works again, and keeps serving', async () => {
    const dir = await tempDir();
    const trigger = path.join(dir, 'fail-fsync');
    // startRelay puts the spool of relay "a" at `${dir}/a-spool`: the failing disk is mounted there
    await mountFailingDisk(path.join(dir, 'a-spool'), path.join(dir, 'backing'), trigger, path.join(dir, 'disk-ready'));
    // the destination is out of reach, so every put stays in the spool
    const dest = `127.0.0.1:${await closedPort()}`;
    const a = await startRelay(dir, 'a', { routes: [`${dest}=127.0.0.1:${await closedPort()}`] });
    const client = await connectRetry(a.address);
    const data = Buffer.alloc(64 * 1024, 7);

    await client.put(dest, '/f.bin', 0, data);
    await client.commit();

    await fsp.writeFile(trigger, '');
    await client.put(dest, '/f.bin', data.length, data);
    await expect(client.commit()).rejects.toThrow(/fsync/);

    // fsync works again, but the data the failed one covered may be gone from the page cache
    await fsp.rm(trigger);
    await client.put(dest, '/f.bin', 2 * data.length, data).catch(() => undefined);
    const again = await client.commit().then(
      () => 'committed',
      (err: Error) => err.message,
    );
    expect(again).toMatch(/the spool's disk failed an fsync.*restart the relay/);

    // the relay keeps running and answers, and says what happened
    expect(a.child.exitCode).toBeNull();
    expect(a.child.signalCode).toBeNull();
    const status = await statusOf(a.address);
    expect(status.failures.byKind['spool/permanent']).toBe(1);
    expect(status.failures.last?.message).toMatch(/the spool's disk failed an fsync/);
    const failures = await failuresOf(a.address);
    expect(failures.some((f) => f.kind === 'spool' && /failed an fsync/.test(f.message))).toBe(true);
    expect(a.log()).toMatch(/spool commit failed: the spool's disk failed an fsync/);
  });

  it('a destination whose disk fails an fsync refuses every later commit and push, and keeps serving', async () => {
    const dir = await tempDir();
    const trigger = path.join(dir, 'fail-fsync');
    const exportDir = path.join(dir, 'export');
    await mountFailingDisk(exportDir, path.join(dir, 'backing'), trigger, path.join(dir, 'disk-ready'));
    const dest = await startRelay(dir, 'dest', { export: exportDir });
    const client = await connectRetry(dest.address);
    const data = Buffer.alloc(64 * 1024, 7);

    await client.put(dest.address, '/f.bin', 0, data);
    await client.commit();

    await fsp.writeFile(trigger, '');
    await client.put(dest.address, '/f.bin', data.length, data);
    await expect(client.commit()).rejects.toThrow(/fsync/);

    // fsync works again, but what the failed one covered may be gone from the page cache
    await fsp.rm(trigger);
    await client.put(dest.address, '/f.bin', 2 * data.length, data).catch(() => undefined);
    const again = await client.commit().then(
      () => 'committed',
      (err: Error) => err.message,
    );
    expect(again).toMatch(/the destination's disk failed an fsync.*restart the relay/);
    const pushed = await client.push(dest.address, '/f.bin').then(
      () => 'pushed',
      (err: Error) => err.message,
    );
    expect(pushed).toMatch(/the destination's disk failed an fsync/);

    // still serving: a read of the file answers
    expect(dest.child.exitCode).toBeNull();
    expect((await client.stat(dest.address, '/f.bin')).size).toBeGreaterThanOrEqual(2 * data.length);
  });
});

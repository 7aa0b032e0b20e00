import crypto from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { startRelay, tempDir, waitFor } from '../helpers/relay-process.js';
import { firstHopBefore, ScriptedNextHop } from '../helpers/scripted-hop.js';

/**
 * Commit groups in flight at once (a mover keeps several on its connection) are
 * released from a first hop's spool in the order they were sent. A later group
 * released first left a file's view in the spool with an earlier truncate and
 * without the later put that the next hop already had: a program re-reading a
 * file it had just rewritten got 0 bytes back.
 */

describe('commit groups in flight at once', () => {
  it('a destination relay answers the commits of one connection in the order they were sent', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const client = await RelayClient.connect(dest.address);
    onTestFinished(() => client.destroy());
    const data = crypto.randomBytes(1024 * 1024);
    for (let round = 0; round < 3; round++) {
      // the first commit has a big file to fsync; the second, sent right behind it, finds nothing
      // dirty left (the first took it) and must still not answer before it
      for (let i = 0; i < 24; i++) await client.put(dest.address, `/big-${round}.bin`, i * data.length, data);
      const order: number[] = [];
      const first = client.commit().then(() => order.push(1));
      const second = client.commit().then(() => order.push(2));
      await Promise.all([first, second]);
      expect(order, `round ${round}`).toEqual([1, 2]);
    }
  });

  it('a first hop keeps a rewritten file readable while the next hop answers a later commit before an earlier one', async () => {
    // the next hop holds its hellos until greet (so a mover finds everything spooled once
    // connected) and every commit until the test answers it, in whatever order it likes
    const next = new ScriptedNextHop({ holdHellos: true });
    const { host, client } = await firstHopBefore(next);

    // a rewrite: truncate, then 40 MiB, more than one commit group (at most 32 MiB each)
    const chunk = 1024 * 1024;
    const data = crypto.randomBytes(40 * chunk);
    await client.truncate(host, '/out.dat', 0);
    for (let off = 0; off < data.length; off += chunk) await client.put(host, '/out.dat', off, data.subarray(off, off + chunk));
    await client.commit();
    // connected now, the mover finds all 40 MiB: a group closed at 32 MiB, then one with the rest
    next.greet();
    await waitFor(() => next.commits.length === 2 && next.commits[1]!.putBytesBefore === data.length, 30_000, 'two commit groups at the next hop');
    expect(next.commits[0]!.putBytesBefore).toBeLessThan(data.length);

    // the next hop answers the second commit first ...
    next.answer(1);
    await new Promise((r) => setTimeout(r, 500));
    // ... and the file still reads back as written, from the first hop's spool
    expect((await client.stat(host, '/out.dat')).size).toBe(data.length);
    const back: Buffer[] = [];
    for (let off = 0; off < data.length; off += 4 * chunk) back.push(await client.get(host, '/out.dat', off, 4 * chunk));
    const read = Buffer.concat(back);
    expect(read.length).toBe(data.length);
    expect(read.equals(data), 'the bytes read back are the bytes written').toBe(true);

    // once the first commit is answered too, everything leaves the spool
    next.answerAll();
    await waitFor(async () => ((await client.status()) as { spool: { pendingOps: number } }).spool.pendingOps === 0, 10_000, 'the spool to empty');
  });
});

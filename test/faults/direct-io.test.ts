import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectRetry, mountFailingDisk } from '../helpers/fault-kit.js';
import { startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * The spool writes its journal with O_DIRECT (src/spool/direct-writer.ts). A file
 * system that refuses it must not cost a byte: the journal then writes through the
 * page cache, and what was committed survives a SIGKILL and is delivered.
 */
describe('a spool disk that refuses O_DIRECT', () => {
  it('gets ordinary writes; committed data survives a SIGKILL of the relay and arrives whole', async () => {
    const dir = await tempDir();
    // startRelay puts the spool of relay "a" at `${dir}/a-spool`: the refusing disk is mounted there
    await mountFailingDisk(path.join(dir, 'a-spool'), path.join(dir, 'backing'), path.join(dir, 'never'), path.join(dir, 'disk-ready'), 'refuse-direct');
    const dest = await startRelay(dir, 'dest', { export: true });
    await dest.kill();
    const a = await startRelay(dir, 'a');
    const client = await connectRetry(a.address);
    const data = crypto.randomBytes(3 * 1024 * 1024 + 4321);
    for (let at = 0; at < data.length; at += 1024 * 1024) await client.put(dest.address, '/out.bin', at, data.subarray(at, at + 1024 * 1024));
    await client.commit();
    client.destroy();

    // the journal's files end at their last record: nothing was padded for direct writes
    const segments = fs.readdirSync(path.join(dir, 'backing', 'journal')).map((n) => fs.statSync(path.join(dir, 'backing', 'journal', n)).size);
    expect(segments.some((size) => size % 4096 !== 0), `segment sizes ${segments.join(', ')}`).toBe(true);

    await a.kill('SIGKILL');
    await a.restart();
    await dest.restart();
    const delivered = path.join(dest.exportDir!, 'out.bin');
    await waitFor(() => fs.existsSync(delivered) && fs.statSync(delivered).size === data.length, 60_000, 'delivery after the restart');
    expect(fs.readFileSync(delivered).equals(data)).toBe(true);
    expect(a.log()).not.toMatch(/spool write failed/);
  });
});

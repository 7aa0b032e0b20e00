import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { sha256File, writeFile } from '../helpers/data.js';
import { startRelay, tempDir } from '../helpers/relay-process.js';

const MiB = 1024 * 1024;

async function connect(address: string): Promise<RelayClient> {
  const c = await RelayClient.connect(address);
  onTestFinished(() => c.destroy());
  return c;
}

/** Direct, one-hop and two-hop chains all deliver 100 MiB byte-identical after push. */
describe('relay chains deliver byte-identical data', () => {
  it('direct: client to the destination relay', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const client = await connect(dest.address);
    const w = await writeFile(client, dest.address, '/direct/data.bin', 100 * MiB, 11);
    await client.commit();
    await client.push(dest.address, '/direct/data.bin');
    const file = path.join(dest.exportDir!, 'direct/data.bin');
    expect(fs.statSync(file).size).toBe(w.bytes);
    expect(await sha256File(file)).toBe(w.sha256);
  });

  it('one hop: client to a spooling relay that forwards straight to the destination', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const client = await connect(hop.address);
    const w = await writeFile(client, dest.address, '/one/data.bin', 100 * MiB, 12);
    await client.commit();
    await client.push(dest.address, '/one/data.bin');
    const file = path.join(dest.exportDir!, 'one/data.bin');
    expect(fs.statSync(file).size).toBe(w.bytes);
    expect(await sha256File(file)).toBe(w.sha256);
    // delivered data leaves the spool
    const status = (await client.status()) as { spool: { pendingOps: number } };
    expect(status.spool.pendingOps).toBe(0);
  });

  it('two hops: first relay routes the destination through a second relay', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const middle = await startRelay(dir, 'middle');
    const first = await startRelay(dir, 'first', { routes: [`${dest.address}=${middle.address}`] });
    const client = await connect(first.address);
    const w = await writeFile(client, dest.address, '/two/data.bin', 100 * MiB, 13);
    await client.commit();
    await client.push(dest.address, '/two/data.bin');
    const file = path.join(dest.exportDir!, 'two/data.bin');
    expect(fs.statSync(file).size).toBe(w.bytes);
    expect(await sha256File(file)).toBe(w.sha256);
    // the data really went through the middle relay
    const mid = await connect(middle.address);
    const ms = (await mid.status()) as { movers: { nextHop: string; bytesDelivered: number }[] };
    expect(ms.movers.find((m) => m.nextHop === dest.address)?.bytesDelivered).toBeGreaterThanOrEqual(100 * MiB);
  });

  it('many small files and metadata operations in bulk frames, in order', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const client = await connect(hop.address);
    const h = dest.address;
    await client.mkdir(h, '/small');
    for (let i = 0; i < 300; i++) {
      await client.truncate(h, `/small/f${i}`, 0);
      await client.put(h, `/small/f${i}`, 0, Buffer.from(`file ${i}\n`));
    }
    // ordered: the write then truncate then rename then unlink must land in that order
    await client.put(h, '/small/moved', 0, Buffer.from('abcdefgh'));
    await client.truncate(h, '/small/moved', 4);
    await client.rename(h, '/small/moved', '/small/renamed');
    await client.unlink(h, '/small/f0');
    await client.commit();
    // read-your-writes on the first hop, before delivery is known
    expect((await client.get(h, '/small/renamed', 0, 100)).toString()).toBe('abcd');
    for (let i = 1; i < 300; i += 50) await client.push(h, `/small/f${i}`);
    await client.push(h, '/small/renamed');
    const names = fs.readdirSync(path.join(dest.exportDir!, 'small')).sort();
    expect(names.length).toBe(300); // 299 files + renamed
    expect(names).not.toContain('f0');
    expect(names).not.toContain('moved');
    expect(fs.readFileSync(path.join(dest.exportDir!, 'small/renamed'), 'utf8')).toBe('abcd');
    expect(fs.readFileSync(path.join(dest.exportDir!, 'small/f299'), 'utf8')).toBe('file 299\n');
    // list through the relay agrees with the destination
    const listed = (await client.list(h, '/small')).map((e) => e.name).sort();
    expect(listed).toEqual(names);
  });
});

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { Relay } from '../../src/relay/relay.js';
import { Logger } from '../../src/util/log.js';
import { startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * The connection a mount has to the relay it embeds: frames handed over as
 * objects in one process (src/client/in-process-transport.ts). The writer's
 * buffers are its own again as soon as a put is handed over, large puts are
 * copied into pooled buffers that go back to their pool once the spool has
 * written them, and everything else behaves as over a socket.
 */

const MiB = 1024 * 1024;
const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

async function firstHopInProcess(dir: string): Promise<{ relay: Relay; client: RelayClient }> {
  const relay = await Relay.start({ listen: '127.0.0.1:0', spoolDir: path.join(dir, 'hop-spool'), log: quiet });
  const client = await RelayClient.over(relay.connectInProcess('test'), relay.address);
  onTestFinished(async () => {
    client.destroy();
    await relay.close();
  });
  return { relay, client };
}

describe('a relay reached in this process', () => {
  it('delivers byte for byte what a writer put from one buffer it refilled as soon as each put was handed over', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    onTestFinished(() => dest.kill());
    const { client } = await firstHopInProcess(dir);

    // pooled sizes (1 MiB, 300 KiB), small ones and one larger than the pool's buffers
    const sizes = [...Array<number>(40).fill(MiB), 300 * 1024, 4096, 17, 2 * MiB + 5, ...Array<number>(8).fill(MiB)];
    const expected = crypto.randomBytes(sizes.reduce((a, b) => a + b, 0));
    const buffer = Buffer.alloc(3 * MiB);
    let offset = 0;
    for (const n of sizes) {
      expected.copy(buffer, 0, offset, offset + n);
      let released = false;
      await client.putOwned(dest.address, '/out.bin', offset, buffer.subarray(0, n), () => (released = true));
      await waitFor(() => released, 5000, 'the put handed over');
      buffer.fill(0xee); // what a reused buffer holds next: none of it may arrive
      offset += n;
    }
    await client.commit();

    // read back from the spool before delivery (the pooled copies are on disk only)
    const back = Buffer.concat(await Promise.all(sizes.map((_, i) => client.get(dest.address, '/out.bin', i * MiB, MiB))));
    expect(back.subarray(0, expected.length).equals(expected)).toBe(true);

    await client.push(dest.address, '/out.bin');
    const delivered = fs.readFileSync(path.join(dest.exportDir!, 'out.bin'));
    expect(delivered.length).toBe(expected.length);
    expect(delivered.equals(expected)).toBe(true);
  });

  it('reports a refused operation at the next commit, as over a socket, and keeps serving', async () => {
    const dir = await tempDir();
    const { relay, client } = await firstHopInProcess(dir);
    // the relay's own host, and it exports nothing
    await client.put(relay.address, '/x', 0, Buffer.from('no'));
    await expect(client.commit()).rejects.toMatchObject({ code: 'NO_EXPORT' });
    expect(((await client.status()) as { connections: number }).connections).toBe(1);
  });

  it('a relay that closes ends the connection: waiting calls fail at once with CONNECTION_LOST', async () => {
    const dir = await tempDir();
    const { relay, client } = await firstHopInProcess(dir);
    const opened = await client.bufOpen(relay.address, 'pipe', 'read');
    // a read of a buffer nobody writes waits until the relay goes away
    const read = client.bufRead(opened.handle, 0, 10).catch((err: unknown) => err);
    await relay.close();
    expect(await read).toMatchObject({ code: 'CONNECTION_LOST' });
    expect(client.closed).toBe(true);
  });
});

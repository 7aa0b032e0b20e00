import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { Relay } from '../../src/relay/relay.js';
import { Logger } from '../../src/util/log.js';
import { pooledPutBuffers } from '../../src/util/put-buffers.js';
import { tempDir } from '../helpers/relay-process.js';

/**
 * Puts that arrive over TCP are read into put buffers, which go back for the next
 * put once the data is written: by the first hop's spool, and by the destination
 * into its file (src/util/put-buffers.ts). Both relays run in this process, so the
 * buffers they gave back can be counted; the bytes must still arrive exactly.
 */

const MiB = 1024 * 1024;
const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('put buffers over sockets', () => {
  it('a first hop and a destination reuse the buffers their puts were read into, and deliver byte for byte', async () => {
    const dir = await tempDir();
    const dest = await Relay.start({ listen: '127.0.0.1:0', spoolDir: path.join(dir, 'dest-spool'), exportDir: path.join(dir, 'export'), log: quiet });
    onTestFinished(() => dest.close());
    const hop = await Relay.start({ listen: '127.0.0.1:0', spoolDir: path.join(dir, 'hop-spool'), log: quiet });
    onTestFinished(() => hop.close());

    // 1 MiB puts (pooled), one of 300 KiB (pooled), small ones and one larger than a put buffer (not)
    const sizes = [...Array<number>(24).fill(MiB), 300 * 1024, 4096, 17, 2 * MiB + 5, ...Array<number>(8).fill(MiB)];
    const expected = crypto.randomBytes(sizes.reduce((a, b) => a + b, 0));
    const putAll = async (client: RelayClient, file: string) => {
      let offset = 0;
      for (const n of sizes) {
        await client.put(dest.address, file, offset, expected.subarray(offset, offset + n));
        offset += n;
      }
      await client.commit();
    };

    // straight to the destination: it gives each buffer back once the data is in the file
    const direct = await RelayClient.connect(dest.address);
    onTestFinished(() => direct.destroy());
    const before = pooledPutBuffers();
    await putAll(direct, '/direct.bin');
    expect(fs.readFileSync(path.join(dir, 'export', 'direct.bin')).equals(expected)).toBe(true);
    const afterDestination = pooledPutBuffers();
    expect(afterDestination).toBeGreaterThan(before);

    // through a first hop: it gives them back once its journal has written the data
    const client = await RelayClient.connect(hop.address);
    onTestFinished(() => client.destroy());
    await putAll(client, '/out.bin');
    expect(pooledPutBuffers()).toBeGreaterThan(afterDestination);
    await client.push(dest.address, '/out.bin');
    expect(fs.readFileSync(path.join(dir, 'export', 'out.bin')).equals(expected)).toBe(true);
    // a pool of at most 48 buffers, however much went through
    expect(pooledPutBuffers()).toBeLessThanOrEqual(48);
  });
});

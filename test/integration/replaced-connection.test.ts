import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { OrderedOp } from '../../src/protocol/messages.js';
import { Relay } from '../../src/relay/relay.js';
import { silentLogger } from '../../src/util/log.js';
import { patternChunk } from '../helpers/data.js';
import { tempDir } from '../helpers/relay-process.js';

/**
 * A mover that reconnects resends everything unacknowledged on a new connection
 * with the same client id; the destination closes the old connection, but the
 * bulk frame that connection is applying runs on. Both passes must still apply
 * each op once and in order.
 */
describe('a destination taking resends from a replacing connection', () => {
  it('never applies a resent truncate after the puts that follow it (the start of the file stays written)', async () => {
    const dir = await tempDir();
    const relay = await Relay.start({ listen: '127.0.0.1:0', spoolDir: path.join(dir, 'spool'), exportDir: path.join(dir, 'export'), log: silentLogger });
    onTestFinished(() => relay.close());
    const host = relay.address;
    const data = patternChunk(7, 0, 256 * 1024);
    const ops: OrderedOp[] = [
      { type: 'truncate', seq: 1, host, path: '/f.bin', size: 0 },
      { type: 'put', seq: 2, host, path: '/f.bin', offset: 0, data },
    ];

    // The old connection's truncate is held until the new connection's resend of it has arrived;
    // a second truncate (the resend, if it gets past the watermark) is held until the old put is written.
    const root = relay.exportRoot!;
    const apply = root.apply.bind(root);
    let truncates = 0;
    let firstReached!: () => void;
    const firstHeld = new Promise<void>((r) => (firstReached = r));
    let releaseFirst!: () => void;
    const released = new Promise<void>((r) => (releaseFirst = r));
    let secondReached!: () => void;
    const secondHeld = new Promise<void>((r) => (secondReached = r));
    let putWritten!: () => void;
    const written = new Promise<void>((r) => (putWritten = r));
    root.apply = async (op) => {
      if (op.type === 'truncate') {
        if (++truncates === 1) {
          firstReached();
          await released;
        } else {
          secondReached();
          await written;
        }
      }
      await apply(op);
      if (op.type === 'put') putWritten();
    };

    const old = await RelayClient.connect(host, { clientId: 'hop>dest' });
    onTestFinished(() => old.destroy());
    const lost = old.bulk(ops).catch(() => undefined); // its connection is replaced below
    await firstHeld;
    const again = await RelayClient.connect(host, { clientId: 'hop>dest' });
    onTestFinished(() => again.destroy());
    const resent = again.bulk(ops);
    // with per-client order the resend waits behind the old truncate and never reaches apply
    await Promise.race([secondHeld, new Promise((r) => setTimeout(r, 500))]);
    releaseFirst();
    expect(await resent).toEqual([]);
    await again.commit();
    await lost;

    const got = fs.readFileSync(path.join(dir, 'export', 'f.bin'));
    expect(got.length, 'the file is short: the resent truncate landed after the put').toBe(data.length);
    expect(Buffer.compare(got, data), 'the file starts with zeros: the resent truncate landed after the put').toBe(0);
    expect(truncates).toBe(1);
  });
});

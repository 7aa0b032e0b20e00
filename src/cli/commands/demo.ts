import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { RelayClient } from '../../client/client.js';
import { createLogger } from '../../util/log.js';
import { formatBytes, parseBytes } from '../../util/units.js';
import { Progress } from '../progress.js';
import { renderStatus } from './status.js';

/**
 * A self-contained tour: a destination relay behind a throttled first hop, a
 * writer that finishes long before the slow link does, then push, a checksum
 * comparison, and the status view. Everything lives in a temporary directory.
 */
export function register(y: Argv): Argv {
  return y.command(
    'demo',
    'Run a two-relay chain on this machine over a throttled link and show put, commit, push and status',
    (c) =>
      c
        .option('size', { type: 'string', default: '32MiB', describe: 'how much data to write' })
        .option('bwlimit', { type: 'string', default: '8MB', describe: 'speed of the emulated slow link' })
        .option('keep', { type: 'boolean', default: false, describe: 'keep the temporary directory' }),
    async (argv) => {
      const size = parseBytes(argv.size);
      const rate = parseBytes(argv.bwlimit);
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'kangaroo-demo-'));
      const log = createLogger('demo-relay', 'warn');
      const say = (s: string) => process.stdout.write(s + '\n');
      const { Relay } = await import('../../relay/relay.js');
      const dest = await Relay.start({ listen: '127.0.0.1:0', spoolDir: path.join(dir, 'dest-spool'), exportDir: path.join(dir, 'export'), log });
      const hop = await Relay.start({ listen: '127.0.0.1:0', spoolDir: path.join(dir, 'hop-spool'), bwlimit: rate, log });
      say(`destination relay ${dest.name} exporting ${path.join(dir, 'export')}`);
      say(`first-hop relay   ${hop.name}, sending at most ${formatBytes(rate)}/s`);
      const client = await RelayClient.connect(hop.address);
      try {
        const data = crypto.randomBytes(size);
        const want = crypto.createHash('sha256').update(data).digest('hex');
        const host = dest.name;
        const file = '/results/output.dat';
        let t0 = performance.now();
        const progress = new Progress('put', size);
        await client.truncate(host, file, 0);
        for (let off = 0; off < size; off += 1024 * 1024) {
          await client.put(host, file, off, data.subarray(off, Math.min(size, off + 1024 * 1024)));
          progress.update(Math.min(size, off + 1024 * 1024));
        }
        await client.commit();
        progress.finish();
        const writeSecs = (performance.now() - t0) / 1000;
        say(`\nwriter done: ${formatBytes(size)} put and committed in ${writeSecs.toFixed(2)} s (the program could exit now)`);
        say(renderStatus((await client.status()) as never));
        t0 = performance.now();
        await client.push(host, file);
        const pushSecs = (performance.now() - t0) / 1000;
        const got = await fsp.readFile(path.join(dir, 'export', 'results', 'output.dat'));
        const have = crypto.createHash('sha256').update(got).digest('hex');
        say(`push returned after a further ${pushSecs.toFixed(2)} s: the file is at its destination`);
        say(`sha256 written   ${want}\nsha256 delivered ${have}\n${have === want ? 'identical' : 'MISMATCH'}`);
        say('\n' + renderStatus((await client.status()) as never));
        if (have !== want) process.exitCode = 1;
      } finally {
        await client.close();
        await hop.close();
        await dest.close();
        if (!argv.keep) await fsp.rm(dir, { recursive: true, force: true });
        else say(`kept ${dir}`);
      }
    },
  );
}

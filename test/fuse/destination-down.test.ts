import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * The destination goes away between two runs of a program: the program's next run
 * writes into the directories it used before. The first hop has seen them there
 * and takes them to be there still, so the program's opens succeed and its output
 * waits in the spool until the destination is back.
 */
describe('a destination that is down', () => {
  it('a program writes into a directory seen there before; the output arrives once the destination is back', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { extra: ['--retry', '*=initial=100ms,max=200ms'] });
    const mount = await startMount(dir, 'm', { relay: hop.address });
    const out = path.join(mount.mountpoint, 'kangaroo', dest.address, 'runs', 'day1');
    const first = await sh(`mkdir -p "${out}" && echo first > "${out}/first.txt" && sync "${out}/first.txt"`, { timeoutMs: 30_000 });
    expect(first.code, first.stderr + mount.log()).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'runs/day1/first.txt'), 'utf8')).toBe('first\n');

    await dest.kill();
    const data = crypto.randomBytes(2 * 1024 * 1024 + 5);
    fs.writeFileSync(path.join(dir, 'second.bin'), data);
    // a fresh look-up, not the kernel's cached one: the mount asks the first hop again
    await new Promise((r) => setTimeout(r, 1500));
    const second = await sh(`test -d "${out}" && cp "${dir}/second.bin" "${out}/second.bin"`, { timeoutMs: 30_000 });
    expect(second.code, second.stderr + mount.log()).toBe(0);

    await dest.restart();
    const arrived = path.join(dest.exportDir!, 'runs/day1/second.bin');
    await waitFor(() => fs.existsSync(arrived) && fs.readFileSync(arrived).equals(data), 60_000, 'second.bin delivered');
    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
  });
});

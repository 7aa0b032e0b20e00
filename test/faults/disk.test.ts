import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { decodeOpRecord, RecordKind } from '../../src/spool/records.js';
import { RECORD_HEADER_BYTES } from '../../src/spool/journal.js';
import { patternChunk, writeFile } from '../helpers/data.js';
import { connectRetry, Expected, expectDrained, expectExactly, failuresOf, figures, pushRetry, seeded, sha256, statusOf } from '../helpers/fault-kit.js';
import { run, sh, startMount } from '../helpers/mount-process.js';
import { CLI, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * Disk faults: a destination whose disk is full, a byte flipped in a hop's spool
 * (found by recovery after a crash, or by the mover when it reads the copy back),
 * and a permanent refusal at the destination that a user fixes and retries.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const FAST_RETRY = ['--retry', '*=initial=200ms,max=1s'];

/** A small tmpfs at `dir`, unmounted when the test finishes (pass or fail; lazily if still busy). */
async function mountTmpfs(dir: string, size: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const r = await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  if (r.code !== 0) throw new Error(`cannot mount a tmpfs at ${dir} (the disk tests need root): ${r.stderr}`);
  // registered before the relays that use it, so it runs after they are killed
  onTestFinished(async () => {
    const u = await run('umount', [dir]);
    if (u.code !== 0) await run('umount', ['-l', dir]);
  });
}

function kangaroo(args: string[]) {
  return run(process.execPath, [CLI, ...args]);
}

interface PutRecord {
  path: string;
  offset: number;
  /** Where the put's data starts in the segment file, and its length. */
  dataPos: number;
  dataLength: number;
  /** A valid record follows this one (so a bad one here is corruption, not a torn tail). */
  hasNext: boolean;
}

/** The put records of a spool segment file, parsed with the spool's own record format. */
function putsIn(segment: string): PutRecord[] {
  const data = fs.readFileSync(segment);
  const out: PutRecord[] = [];
  for (let pos = 0; pos + RECORD_HEADER_BYTES <= data.length; ) {
    const length = data.readUInt32BE(pos);
    const kind = data.readUInt8(pos + 8);
    const payload = data.subarray(pos + RECORD_HEADER_BYTES, pos + 8 + length);
    const next = pos + 8 + length;
    if (kind === RecordKind.OP) {
      const { op, dataOffset } = decodeOpRecord(payload);
      if (op.type === 'put') out.push({ path: op.path, offset: op.offset, dataPos: pos + RECORD_HEADER_BYTES + dataOffset, dataLength: op.data.length, hasNext: next < data.length });
    }
    pos = next;
  }
  return out;
}

function segments(spoolDir: string): string[] {
  const dir = path.join(spoolDir, 'journal');
  return fs
    .readdirSync(dir)
    .filter((n) => /^seg-\d+\.log$/.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

function flipByte(file: string, pos: number, mask: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, pos);
    b[0] = b[0]! ^ mask;
    fs.writeSync(fd, b, 0, 1, pos);
  } finally {
    fs.closeSync(fd);
  }
}

describe('disk faults', () => {
  it('destination disk full: the program\'s close succeeds at the first hop, delivery waits on NO_SPACE, and finishes once space is freed', async () => {
    const rng = seeded('disk full');
    const dir = await tempDir();
    const exportDir = path.join(dir, 'small-export');
    await mountTmpfs(exportDir, '8m');
    const filler = path.join(exportDir, 'filler.bin');
    fs.writeFileSync(filler, Buffer.alloc(5 * MiB, 0x5a)); // 3 MiB left
    const dest = await startRelay(dir, 'dest', { export: exportDir });
    const hop = await startRelay(dir, 'hop', { extra: FAST_RETRY });
    const mount = await startMount(dir, 'mnt', { relay: hop.address });

    // 3 x 2 MiB written by an unmodified program (cp) through the mount
    const expected = new Map<string, Expected>();
    const cps: string[] = [];
    for (let i = 0; i < 3; i++) {
      const data = patternChunk(rng.int(1e9), 0, 2 * MiB - rng.int(64 * KiB));
      const input = path.join(dir, `input${i}.bin`);
      fs.writeFileSync(input, data);
      expected.set(`/full/f${i}.bin`, { bytes: data.length, sha256: sha256(data) });
      cps.push(`cp "${input}" "${path.join(mount.mountpoint, 'kangaroo', dest.address, 'full', `f${i}.bin`)}"`);
    }
    const w = await sh(`mkdir -p "${path.join(mount.mountpoint, 'kangaroo', dest.address, 'full')}" && ${cps.join(' && ')}`);
    expect(w.code, w.stderr + mount.log()).toBe(0); // close() committed: the data is safe at the first hop

    await waitFor(async () => (await failuresOf(hop.address)).some((r) => r.code === 'NO_SPACE'), 30_000, 'a NO_SPACE failure on record');
    const log = await failuresOf(hop.address);
    const noSpace = log.filter((r) => r.code === 'NO_SPACE');
    expect(noSpace[0]!.class).toBe('transient');
    expect(noSpace[0]!.action).toMatch(/^retry in/);
    const s = await statusOf(hop.address);
    expect(s.destinations[0]!.pendingBytes).toBeGreaterThan(0);
    expect(s.files.every((f) => f.blocked === null)).toBe(true); // transient: nothing stopped
    // it keeps trying while the disk stays full
    const retriesBefore = s.movers[0]!.retries;
    await waitFor(async () => (await statusOf(hop.address)).movers[0]!.retries >= retriesBefore + 2, 30_000, 'more retries against the full disk');

    fs.unlinkSync(filler);
    for (const p of expected.keys()) await pushRetry(hop.address, dest.address, p);
    const bytes = await expectExactly(exportDir, expected);
    await expectDrained(hop.address);
    const after = await failuresOf(hop.address);
    expect(after.slice(log.length).some((r) => r.code === 'RECOVERED')).toBe(true);
    figures('disk/full', { noSpaceRecords: after.filter((r) => r.code === 'NO_SPACE').length, bytesChecked: bytes });
  });

  it('a byte flipped in a spool segment is reported by recovery (or by the mover reading it back) and never delivered', async () => {
    const rng = seeded('spool corruption');
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { extra: FAST_RETRY });
    await dest.kill('SIGKILL'); // the data waits at the hop
    const host = dest.address;
    const client = await connectRetry(hop.address);
    const files = [0, 1, 2, 3].map((i) => ({ path: `/spool/f${i}.bin`, bytes: MiB + rng.int(MiB), seed: rng.int(1e9) }));
    const expected = new Map<string, Expected>();
    for (const f of files) expected.set(f.path, await writeFile(client, host, f.path, f.bytes, f.seed, 256 * KiB));
    await client.commit();
    client.destroy();

    // (1) crashed hop, a byte flipped in a committed put of f1, restart: recovery finds it
    await hop.kill('SIGKILL');
    const seg = segments(hop.spoolDir).at(-1)!;
    const victims = putsIn(seg).filter((p) => p.path === '/spool/f1.bin' && p.hasNext);
    expect(victims.length).toBeGreaterThan(0);
    const victim = rng.pick(victims);
    flipByte(seg, victim.dataPos + rng.int(victim.dataLength), 1 + rng.int(255));
    await hop.restart();
    expect(hop.log()).toMatch(/spool recovery: corrupted record in segment \d+ at \d+ \(\d+ bytes skipped, not delivered\)/);
    const st = await statusOf(hop.address);
    expect(st.spool.recovery?.corruptedRecords).toBe(1);
    const cli = await kangaroo(['log', '--json', '--relay', hop.address]);
    expect(cli.code, cli.stderr).toBe(0);
    const spoolRecords = (JSON.parse(cli.stdout) as { kind: string; class: string; action: string }[]).filter((r) => r.kind === 'spool');
    expect(spoolRecords.length).toBe(1);
    expect(spoolRecords[0]!.action).toMatch(/never delivered/);
    expect((await failuresOf(hop.address)).filter((r) => r.kind === 'spool').length).toBe(1);

    // (2) the restarted hop holds f3 on disk only; flip a byte of it while the hop runs:
    // the mover reads the copy back, finds it does not match the put's sum, and stops the file
    const seg3 = segments(hop.spoolDir).find((s) => putsIn(s).some((p) => p.path === '/spool/f3.bin'))!;
    const v3 = rng.pick(putsIn(seg3).filter((p) => p.path === '/spool/f3.bin'));
    const flip3 = v3.dataPos + rng.int(v3.dataLength);
    flipByte(seg3, flip3, 0x80);

    await dest.restart();
    for (const p of ['/spool/f0.bin', '/spool/f2.bin']) await pushRetry(hop.address, host, p);
    // f1 arrives without the lost put: a hole (or a short file), never the flipped bytes
    await pushRetry(hop.address, host, '/spool/f1.bin');
    const f1 = fs.readFileSync(path.join(dest.exportDir!, 'spool/f1.bin'));
    const f1spec = files[1]!;
    const want1 = Buffer.concat(Array.from({ length: Math.ceil(f1spec.bytes / (256 * KiB)) }, (_, i) => patternChunk(f1spec.seed, i, Math.min(256 * KiB, f1spec.bytes - i * 256 * KiB))));
    const lost = f1.subarray(victim.offset, victim.offset + victim.dataLength);
    expect(lost.every((b) => b === 0)).toBe(true);
    expect(Buffer.compare(f1.subarray(0, victim.offset), want1.subarray(0, victim.offset))).toBe(0);
    expect(Buffer.compare(f1.subarray(victim.offset + victim.dataLength), want1.subarray(victim.offset + victim.dataLength, f1.length))).toBe(0);

    // f3 is stopped with INTEGRITY and never written with the bad byte
    await expect(pushRetry(hop.address, host, '/spool/f3.bin')).rejects.toMatchObject({ code: 'DELIVERY_BLOCKED', message: expect.stringMatching(/INTEGRITY/) });
    const integ = (await failuresOf(hop.address)).filter((r) => r.kind === 'integrity');
    expect(integ.length).toBe(1);
    expect(integ[0]!.target).toBe(`kangaroo://${host}/spool/f3.bin`);
    const f3 = path.join(dest.exportDir!, 'spool/f3.bin');
    if (fs.existsSync(f3)) {
      const got = fs.readFileSync(f3);
      const want = patternChunk(files[3]!.seed, Math.floor(v3.offset / (256 * KiB)), 256 * KiB);
      const at = flip3 - v3.dataPos;
      expect(v3.offset + at >= got.length || got[v3.offset + at] === want[at] || got[v3.offset + at] === 0).toBe(true);
    }

    // the writer learns of both from the log and writes the two files again; retry restarts f3
    const again = await connectRetry(hop.address);
    for (const i of [1, 3]) await writeFile(again, host, files[i]!.path, files[i]!.bytes, files[i]!.seed, 256 * KiB);
    await again.commit();
    const retried = await kangaroo(['retry', `kangaroo://${host}/spool/f3.bin`, '--relay', hop.address]);
    expect(retried.code, retried.stderr).toBe(0);
    await pushRetry(hop.address, host, '/spool/f1.bin');
    let f3error = '';
    await pushRetry(hop.address, host, '/spool/f3.bin', 30_000).catch((err: Error) => (f3error = err.message));
    expect(f3error, 'f3 was written again and retried, yet its corrupted spooled put stops it again').toBe('');
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(hop.address);
    figures('disk/spool-corruption', { flippedBytes: 2, recoveryCorruptRecords: 1, moverIntegrityStops: integ.length, bytesChecked: bytes });
  });

  it('a permanent refusal at the destination stops that file only; after the fix, kangaroo retry delivers it', async () => {
    const rng = seeded('permanent refusal');
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { extra: FAST_RETRY });
    // a regular file where the writer needs a directory: root's permissions cannot stop this one
    const blocker = path.join(dest.exportDir!, 'blocked');
    fs.writeFileSync(blocker, 'not a directory\n');
    const host = dest.address;
    const client = await connectRetry(hop.address);
    const x = rng.int(1e9);
    const expected = new Map<string, Expected>();
    expected.set('/blocked/x.txt', await writeFile(client, host, '/blocked/x.txt', 300 * KiB, x, 64 * KiB));
    expected.set('/fine/y.txt', await writeFile(client, host, '/fine/y.txt', 200 * KiB, x + 1, 64 * KiB));
    await client.commit(); // safe at the first hop, whatever happens downstream

    const refused = await pushRetry(hop.address, host, '/blocked/x.txt').then(
      () => undefined,
      (err: { code: string; message: string }) => err,
    );
    expect(refused?.code).toBe('DELIVERY_BLOCKED');
    expect(refused?.message).toMatch(/NOT_DIR|EXISTS/);
    expect(refused?.message).toMatch(/kangaroo retry kangaroo:\/\//);
    await pushRetry(hop.address, host, '/fine/y.txt'); // the other file is not held up

    const st = await kangaroo(['status', '--json', '--relay', hop.address]);
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout) as { files: { path: string; blocked: { code: string } | null }[] };
    const blockedCode = status.files.find((f) => f.path === '/blocked/x.txt')?.blocked?.code;
    expect(blockedCode).toMatch(/NOT_DIR|EXISTS/);
    const human = await kangaroo(['status', '--relay', hop.address]);
    expect(human.stdout).toMatch(/blocked\/x\.txt.*(NOT_DIR|EXISTS).*kangaroo retry/);
    const perm = (await failuresOf(hop.address)).filter((r) => r.class === 'permanent' && r.target === `kangaroo://${host}/blocked/x.txt`);
    expect(perm.length).toBe(1);
    expect(perm[0]!.action).toMatch(/blocked/);

    fs.unlinkSync(blocker); // the fix
    const r = await kangaroo(['retry', `kangaroo://${host}/blocked/x.txt`, '--relay', hop.address]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/re-queued 1 file/);
    await pushRetry(hop.address, host, '/blocked/x.txt');
    const bytes = await expectExactly(dest.exportDir!, expected);
    await expectDrained(hop.address);
    figures('disk/permanent', { code: blockedCode, bytesChecked: bytes });
  });
});

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { KangarooError } from '../../src/errors.js';
import type { FailureRecord } from '../../src/mover/failure-log.js';
import type { RelayStatus } from '../../src/relay/status.js';
import { makeRng, Rng } from './fuzz.js';
import { run } from './mount-process.js';
import { waitFor } from './relay-process.js';

/**
 * Shared pieces of the fault-injection suite (test/faults): seeds that can be
 * replayed, the end-of-test check that the destination holds exactly what was
 * committed, and small clients that ride out relay restarts.
 */

/** A seeded random source; KANGAROO_SEED replays a run. The seed is printed. */
export function seeded(label: string): Rng {
  const seed = Number(process.env.KANGAROO_SEED ?? crypto.randomInt(1, 2 ** 31));
  console.log(`[faults] ${label}: seed ${seed} (replay with KANGAROO_SEED=${seed})`);
  return makeRng(seed);
}

/** One line of figures per test, for the closing report. */
export function figures(label: string, values: Record<string, unknown>): void {
  console.log(`[faults] FIGURES ${label} ${JSON.stringify(values)}`);
}

export interface Expected {
  bytes: number;
  sha256: string;
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** Every regular file under `root`, as '/'-rooted relative paths. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(path.join(dir, e.name), p);
      else out.push(p);
    }
  };
  await walk(root, '');
  return out.sort();
}

async function fileSha(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const c of fs.createReadStream(file)) hash.update(c as Buffer);
  return hash.digest('hex');
}

/**
 * The destination holds exactly the expected files (no others), each with the
 * expected size and sha256. Returns the bytes checked.
 */
export async function expectExactly(root: string, expected: Map<string, Expected>, ignore: (p: string) => boolean = () => false): Promise<number> {
  const present = (await listFiles(root)).filter((p) => !ignore(p));
  const want = [...expected.keys()].sort();
  const missing = want.filter((p) => !present.includes(p));
  const extra = present.filter((p) => !expected.has(p));
  expect({ missing: missing.slice(0, 20), extra: extra.slice(0, 20) }).toEqual({ missing: [], extra: [] });
  let bytes = 0;
  const wrong: string[] = [];
  for (const p of want) {
    const e = expected.get(p)!;
    const file = path.join(root, p);
    const size = (await fsp.stat(file)).size;
    if (size !== e.bytes || (await fileSha(file)) !== e.sha256) wrong.push(`${p}: ${size} bytes, expected ${e.bytes}`);
    bytes += size;
  }
  expect(wrong.slice(0, 20)).toEqual([]);
  return bytes;
}

/** Peak resident set (VmHWM) of a live process, in bytes. */
export function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Connects, retrying while the relay is down (restarting); destroyed when the test ends. */
export async function connectRetry(address: string, timeoutMs = 60_000, clientId?: string): Promise<RelayClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const c = await RelayClient.connect(address, { connectTimeoutMs: 5000, ...(clientId ? { clientId } : {}) });
      onTestFinished(() => c.destroy());
      return c;
    } catch (err) {
      if (!KangarooError.from(err).transient || Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

/** One request on a short-lived connection (status, log, retry), retried while the relay restarts. */
export async function ask<T>(address: string, f: (c: RelayClient) => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let c: RelayClient | undefined;
    try {
      c = await RelayClient.connect(address, { connectTimeoutMs: 5000 });
      return await f(c);
    } catch (err) {
      const e = KangarooError.from(err);
      if (!e.transient || Date.now() > deadline) throw e;
      await sleep(100);
    } finally {
      c?.destroy();
    }
  }
}

export const statusOf = (address: string) => ask(address, async (c) => (await c.status()) as RelayStatus);
export const failuresOf = (address: string) => ask(address, async (c) => (await c.failureLog(10_000)) as FailureRecord[]);

/**
 * push through `relay`: resolves once the file is fsync'd at its destination.
 * A transient error only means "not known yet": reconnect and push again.
 */
export async function pushRetry(relay: string, host: string, p: string, timeoutMs = 120_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    let c: RelayClient | undefined;
    try {
      c = await RelayClient.connect(relay, { connectTimeoutMs: 5000 });
      await c.push(host, p);
      return attempts;
    } catch (err) {
      const e = KangarooError.from(err);
      if (!e.transient || Date.now() > deadline) throw e;
      await sleep(200);
    } finally {
      c?.destroy();
    }
  }
}

/** Nothing left in a relay's spool and no file stopped: everything it took was delivered. */
export async function expectDrained(address: string): Promise<RelayStatus> {
  const s = await statusOf(address);
  expect({ pendingOps: s.spool.pendingOps, files: s.files.map((f) => `${f.path}: ${f.blocked?.code ?? 'pending'}`) }).toEqual({ pendingOps: 0, files: [] });
  return s;
}

const FAILING_DISK = path.resolve(__dirname, 'failing-disk.mjs');

/**
 * Mounts the failing disk (test/helpers/failing-disk.mjs) at `mnt`, backed by `backing`;
 * its fsync fails with EIO while `trigger` exists, and with `refuse-direct` it refuses
 * O_DIRECT opens. Registered before the relays that use it, so its cleanup (kill by
 * pid, lazy unmount) runs after they are killed, pass or fail.
 */
export async function mountFailingDisk(mnt: string, backing: string, trigger: string, ready: string, mode?: 'refuse-direct'): Promise<void> {
  await fsp.mkdir(backing, { recursive: true });
  let output = '';
  const child = spawn(process.execPath, [FAILING_DISK, mnt, backing, trigger, ready, ...(mode ? [mode] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  onTestFinished(async () => {
    await run('fusermount', ['-u', '-z', mnt]);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await exited;
    }
  });
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`failing disk exited with ${child.exitCode}: ${output}`);
    return fs.existsSync(ready);
  }, 20_000, `the failing disk at ${mnt}`);
}

import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { onTestFinished } from 'vitest';

/**
 * Real relay daemons in child processes, for tests. Each test owns what it
 * starts: the process is killed (by its pid) and its directory removed when the
 * test finishes, pass or fail.
 */

export const CLI = path.resolve(__dirname, '../../dist/cli/main.js');

export interface RelayProcess {
  address: string;
  port: number;
  spoolDir: string;
  exportDir: string | undefined;
  child: ChildProcess;
  log: () => string;
  /** SIGKILL and wait for exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start again on the same port, spool and export. */
  restart(): Promise<void>;
}

export interface RelaySpec {
  export?: boolean | string;
  routes?: string[];
  bwlimit?: string;
  maxSpoolBytes?: string;
  port?: number;
  extra?: string[];
}

/** A temporary directory removed when the test finishes. */
export async function tempDir(prefix = `kangaroo-test-${process.env.KANGAROO_TEST_RUN ?? 'x'}-`): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  onTestFinished(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return dir;
}

export async function startRelay(dir: string, name: string, spec: RelaySpec = {}): Promise<RelayProcess> {
  const spoolDir = path.join(dir, `${name}-spool`);
  const exportDir = spec.export ? (typeof spec.export === 'string' ? spec.export : path.join(dir, `${name}-export`)) : undefined;
  let output = '';
  const proc: RelayProcess = {
    address: '',
    port: spec.port ?? 0,
    spoolDir,
    exportDir,
    child: undefined as unknown as ChildProcess,
    log: () => output,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      const c = proc.child;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill(signal);
      await exited;
    },
    async restart() {
      await proc.kill();
      await launch();
    },
  };
  const launch = async () => {
    const ready = path.join(dir, `${name}-ready-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const args = [CLI, 'relay', '--listen', `127.0.0.1:${proc.port}`, '--spool', spoolDir, '--ready-file', ready, '--log-level', 'debug'];
    if (exportDir) args.push('--export', exportDir);
    for (const r of spec.routes ?? []) args.push('--route', r);
    if (spec.bwlimit) args.push('--bwlimit', spec.bwlimit);
    if (spec.maxSpoolBytes) args.push('--max-spool-bytes', spec.maxSpoolBytes);
    args.push(...(spec.extra ?? []));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    proc.child = child;
    const deadline = Date.now() + 20_000;
    // the relay writes the file in place: it can exist before its line is complete
    const isReady = () => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8').endsWith('\n');
    while (!isReady()) {
      if (child.exitCode !== null) throw new Error(`relay ${name} exited with ${child.exitCode}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`relay ${name} did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    proc.address = (await fsp.readFile(ready, 'utf8')).trim();
    proc.port = Number(proc.address.split(':').pop());
  };
  await launch();
  onTestFinished(async () => {
    await proc.kill();
  });
  return proc;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 60_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/**
 * A loopback port that nothing listens on (checked, not assumed), for a peer that is
 * out of reach. Never one to listen on: tests run in parallel, and another test's
 * unreachable peer would reach that listener (use freePort).
 */
export async function closedPort(): Promise<number> {
  if (await refused(1)) return 1;
  for (;;) {
    const port = await freePort();
    if (await refused(port)) return port;
  }
}

/** A loopback port the kernel just had free (an ephemeral one, never port 1): for a process to listen on. */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from './resources.js';

/** A relay daemon in a child process, started the way a user starts one. */

export interface RelayHandle {
  name: string;
  address: string;
  exportDir: string | undefined;
  pid: number;
}

export interface RelaySpec {
  export?: boolean;
  bwlimit?: string;
  maxSpoolBytes?: number;
  /** Listen address (default 127.0.0.1:0, any free port). */
  listen?: string;
  /** More command-line options. */
  args?: string[];
}

const MAX_LOG = 64 * 1024;

export async function startRelay(cli: string, res: Resources, name: string, spec: RelaySpec = {}): Promise<RelayHandle> {
  const dir = await res.tempDir();
  const ready = path.join(dir, 'ready');
  const exportDir = spec.export ? path.join(dir, 'export') : undefined;
  const args = [cli, 'relay', '--listen', spec.listen ?? '127.0.0.1:0', '--spool', path.join(dir, 'spool'), '--ready-file', ready, '--log-level', 'warn'];
  if (exportDir) args.push('--export', exportDir);
  if (spec.bwlimit) args.push('--bwlimit', spec.bwlimit);
  if (spec.maxSpoolBytes) args.push('--max-spool-bytes', String(spec.maxSpoolBytes));
  args.push(...(spec.args ?? []));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => {
    if (output.length < MAX_LOG) output += d.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  res.track({ name: `relay ${name}`, child, output: () => output });
  const deadline = Date.now() + 20_000;
  // the file is written whole with a newline at the end: until then it may exist half-written
  let text = '';
  while (!text.endsWith('\n')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`relay ${name} exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    if (Date.now() > deadline) throw new Error(`relay ${name} was not ready within 20 s`);
    await new Promise((r) => setTimeout(r, 20));
    if (fs.existsSync(ready)) text = await fsp.readFile(ready, 'utf8');
  }
  const address = text.trim();
  return { name, address, exportDir, pid: child.pid! };
}

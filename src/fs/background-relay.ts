import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The relay that carries on for a mount's embedded relay when the mount goes with data
 * still undelivered, or while another mount (any client) still uses that relay: a
 * detached `kangaroo relay` on the same spool and address. It is
 * the embedded relay continued, so it sends at the rate the user capped the mount at
 * and proves the same secret to the next hop (without it, nothing pending would ever
 * be delivered to a destination that asks for one). The unmount tells the user where
 * to watch it, so it waits until it answers there. It exits once everything is
 * delivered and no client is connected.
 */

/** How the embedded relay was set up: the background relay is set up the same way. */
export interface BackgroundRelayOptions {
  address: string;
  spoolDir: string;
  /** Bytes per second it sends on, as the embedded relay did. */
  bwlimit?: number;
  /** The file the mount's secret came from. */
  secretFile?: string;
}

export type BackgroundRelay = { pid: number; state: 'ready' } | { pid: number; state: 'starting' | 'failed'; log: string };

const POLL_MS = 50;
/** How long to wait for it to answer before saying it is still starting. */
const READY_WITHIN_MS = 15_000;

export async function startBackgroundRelay(o: BackgroundRelayOptions): Promise<BackgroundRelay> {
  const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cli/main.js');
  const logFile = path.join(o.spoolDir, 'background-relay.log');
  const readyFile = path.join(o.spoolDir, 'background-relay.ready');
  await fsp.rm(readyFile, { force: true });
  const args = [cli, 'relay', '--listen', o.address, '--spool', o.spoolDir, '--ready-file', readyFile, '--exit-when-done'];
  if (o.bwlimit !== undefined) args.push('--bwlimit', String(o.bwlimit));
  if (o.secretFile !== undefined) args.push('--secret-file', o.secretFile);
  const out = await fsp.open(logFile, 'a');
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out.fd, out.fd] });
  await out.close();
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', () => (exited = true));
  child.unref();
  const pid = child.pid ?? 0;
  const deadline = Date.now() + READY_WITHIN_MS;
  while (Date.now() < deadline) {
    if (await exists(readyFile)) return { pid, state: 'ready' };
    if (exited) return { pid, state: 'failed', log: logFile };
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return { pid, state: 'starting', log: logFile };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file, fs.constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** What the user is told of a background relay that started (ready, or still starting) to deliver what is pending. */
export function deliveringNote(bg: BackgroundRelay, address: string): string {
  return `a background relay (pid ${bg.pid}) on ${address} is delivering it (see kangaroo status --relay ${address})` + (bg.state === 'starting' ? `; it is still starting (its log: ${bg.log})` : '');
}

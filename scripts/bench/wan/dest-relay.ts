import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from '../resources.js';
import { Started, killTree, start, waitUntil } from './exec.js';
import { Link } from './link.js';

/**
 * kangaroo's destination relay on the destination host: it writes what arrives
 * under its export directory. It keeps its spool, export directory and address
 * across a restart, as a relay restarted by its init system would.
 */
export interface DestinationRelay {
  /** HOST:PORT, the name programs write under (MOUNT/kangaroo/HOST:PORT/...). */
  address: string;
  exportDir: string;
  kill(): void;
  restart(): Promise<void>;
}

export const DEST_RELAY_PORT = 9094;

export async function startDestinationRelay(cli: string, res: Resources, link: Link, exportDir: string): Promise<DestinationRelay> {
  const dir = await res.tempDir();
  const address = `${link.destIp}:${link.kind === 'netns' ? DEST_RELAY_PORT : 19094 + (process.pid % 1000)}`;
  let relay: Started | undefined;
  const launch = async () => {
    const ready = path.join(dir, 'ready');
    await fsp.rm(ready, { force: true });
    const args = [cli, 'relay', '--listen', address, '--export', exportDir, '--spool', path.join(dir, 'spool'), '--allow', `${link.hostIp}/32`, '--ready-file', ready, '--log-level', 'warn'];
    relay = start(res, 'destination relay', ...link.onDest(process.execPath, args));
    const r = relay;
    await waitUntil('destination relay', () => fs.existsSync(ready) && fs.readFileSync(ready, 'utf8').endsWith('\n'), 20_000, () =>
      r.exited() ? r.output() || 'exited' : undefined,
    );
  };
  await launch();
  return {
    address,
    exportDir,
    kill() {
      if (relay?.child.pid !== undefined) killTree(relay.child.pid);
    },
    restart: launch,
  };
}

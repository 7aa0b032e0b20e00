import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from '../resources.js';
import { startMount } from '../mount-process.js';
import { startRelay } from '../relay-process.js';
import { Approach } from './approach.js';
import { DestinationRelay } from './dest-relay.js';

/**
 * kangaroo: a mount on this host, a first-hop relay on this host (its spool on
 * local disk, not throttled), and the destination relay across the link. The
 * program writes MOUNT/kangaroo/DEST/...; close commits to the first hop's spool,
 * and the first hop's mover carries the data over the link in the background.
 * Without namespaces, the first hop's --bwlimit plays the link.
 */
export async function kangarooApproach(cli: string, res: Resources, dest: DestinationRelay, bwlimitMBps?: number): Promise<Approach> {
  const hop = await startRelay(cli, res, 'first hop', bwlimitMBps !== undefined ? { bwlimit: `${bwlimitMBps}MB` } : {});
  const gns = path.join(await res.tempDir(), 'gns');
  await fsp.writeFile(gns, '');
  const mount = await startMount(cli, res, 'kangaroo', hop.address, gns);
  return {
    key: 'kangaroo',
    label: 'kangaroo (mount, first hop, relay)',
    settings: 'defaults; first hop on this host' + (bwlimitMBps !== undefined ? `, --bwlimit ${bwlimitMBps}MB` : ''),
    writeDir: path.join(mount.mountpoint, 'kangaroo', dest.address),
    destDir: dest.exportDir,
  };
}

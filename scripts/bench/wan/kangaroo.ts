import fsp from 'node:fs/promises';
import path from 'node:path';
import { Resources } from '../resources.js';
import { startMount } from '../mount-process.js';
import { freePort } from '../ports.js';
import { Approach } from './approach.js';
import { DestinationRelay } from './dest-relay.js';

/**
 * kangaroo as a new user gets it: a mount with no relay running, so it embeds its
 * own (the first hop, its spool on local disk, in the mount's process), and the
 * destination relay across the link. The program writes MOUNT/kangaroo/DEST/...;
 * close commits to the spool, and the embedded relay's mover carries the data over
 * the link in the background. Without namespaces, its --bwlimit plays the link.
 */
export async function kangarooApproach(cli: string, res: Resources, dest: DestinationRelay, bwlimitMBps?: number): Promise<Approach> {
  const gns = path.join(await res.tempDir(), 'gns');
  await fsp.writeFile(gns, '');
  // nothing listens there: the mount starts its embedded relay
  const nobody = `127.0.0.1:${await freePort()}`;
  const mount = await startMount(cli, res, 'kangaroo', nobody, gns, bwlimitMBps !== undefined ? ['--bwlimit', `${bwlimitMBps}MB`] : []);
  return {
    key: 'kangaroo',
    label: 'kangaroo (mount with its embedded relay, destination relay)',
    settings: 'defaults; the first hop embedded in the mount' + (bwlimitMBps !== undefined ? `, --bwlimit ${bwlimitMBps}MB` : ''),
    writeDir: path.join(mount.mountpoint, 'kangaroo', dest.address),
    destDir: dest.exportDir,
  };
}

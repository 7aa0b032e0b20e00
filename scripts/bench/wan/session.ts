import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Resources } from '../resources.js';
import { Approach, ApproachKey } from './approach.js';
import { DestinationRelay, startDestinationRelay } from './dest-relay.js';
import { kangarooApproach } from './kangaroo.js';
import { Link, createLink } from './link.js';
import { rcloneApproach } from './rclone.js';
import { SshServer, startSshd } from './sshd.js';
import { sshfsApproach } from './sshfs.js';
import { stagingApproach } from './staging.js';

/**
 * Everything the comparison runs over: the link, the two servers on the
 * destination host (sshd, kangaroo's destination relay) and the four approaches,
 * each writing to a destination directory of its own.
 */
export interface Session {
  link: Link;
  /** Measured once, at the starting rate: decimal MB/s and its share of the nominal rate. */
  measuredMBps: number;
  efficiency: number;
  ssh: SshServer;
  relay: DestinationRelay;
  approaches: Approach[];
}

const here = path.dirname(fileURLToPath(import.meta.url));
const SETUP = path.resolve(here, '../../../../scripts/bench/wan/setup-peers.sh');
const TOOLS = ['sshd', 'ssh', 'scp', 'sshfs', 'rclone', 'nft'];

function missingTools(): string[] {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  return TOOLS.filter((t) => !dirs.some((d) => d && fs.existsSync(path.join(d, t))));
}

/** Installs the peers with setup-peers.sh when one is missing (it needs root and the Debian mirror). */
export function ensurePeers(progress: (s: string) => void): void {
  const missing = missingTools();
  if (missing.length === 0) return;
  progress(`  installing the peers (missing: ${missing.join(', ')}) with ${path.basename(SETUP)} ... `);
  execFileSync('bash', [SETUP], { stdio: ['ignore', 'ignore', 'pipe'] });
  const still = missingTools();
  if (still.length > 0) throw new Error(`still missing after ${SETUP}: ${still.join(', ')}`);
  progress('done\n');
}

/**
 * Opens the link and everything on it. `knownEfficiency` (measured rate over
 * nominal, from an earlier session) skips the rate measurement.
 */
export async function openSession(cli: string, res: Resources, rateMBps: number, knownEfficiency?: number, only?: ApproachKey[]): Promise<Session> {
  const link = await createLink(res, { rateMBps });
  // 4 s of data at the nominal rate: long enough to see the shaped rate, not slow start
  const measuredMBps = knownEfficiency !== undefined ? rateMBps * knownEfficiency : await link.measure(Math.max(4e6, Math.round(rateMBps * 4e6)));
  const ssh = await startSshd(res, link);
  const destRoot = await res.tempDir();
  const destFor = (key: ApproachKey) => {
    const d = path.join(destRoot, key);
    fs.mkdirSync(d);
    return d;
  };
  const relay = await startDestinationRelay(cli, res, link, destFor('kangaroo'));
  // without a shaped link, every peer brings its own limit
  const limit = link.kind === 'loopback' ? rateMBps : undefined;
  const want = (k: ApproachKey) => !only || only.includes(k);
  const approaches: Approach[] = [];
  if (want('sshfs')) approaches.push(await sshfsApproach(res, ssh, destFor('sshfs')));
  if (want('rclone')) approaches.push(await rcloneApproach(res, ssh, destFor('rclone'), limit));
  if (want('staging')) approaches.push(await stagingApproach(res, ssh, destFor('staging'), limit));
  if (want('kangaroo')) approaches.push(await kangarooApproach(cli, res, relay, limit));
  return { link, measuredMBps, efficiency: measuredMBps / rateMBps, ssh, relay, approaches };
}

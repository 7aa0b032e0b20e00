import { withResources } from '../resources.js';
import { now } from '../stats.js';
import { settleDisk, sleep } from './exec.js';
import { openSession } from './session.js';
import { TrialResult, startTrial } from './trial.js';

/**
 * Faults in the middle of a burst, the same fault for all four approaches at once
 * (they share the link, so their speeds here are not figures; their outcomes are):
 * - server: the destination's server is SIGKILLed (sshd with every session it
 *   forked, for sshfs, rclone and scp; the destination relay for kangaroo) and
 *   started again a few seconds later;
 * - cut: every packet on the link is dropped silently for a while, then the link
 *   comes back.
 * Each fault gets a fresh session: a fault may leave an approach unusable (a dead
 * sshfs mount), which must not spill into the next one.
 */

export type FaultKind = 'server' | 'cut';

export interface FaultSpec {
  mib: number;
  /** How long the server stays down. */
  downSeconds: number;
  /** How long the link stays cut. */
  cutSeconds: number;
  /** After the fault ends: how long the programs may still run, and how long the destination is watched. */
  graceSeconds: number;
}

export interface FaultRun {
  kind: FaultKind;
  description: string;
  /** From the programs' start (all start together). */
  faultAtMs: number;
  faultEndMs: number;
  trials: TrialResult[];
}

export async function faultRun(cli: string, kind: FaultKind, spec: FaultSpec, rateMBps: number, efficiency: number, progress: (t: string) => void): Promise<FaultRun> {
  const outage = (kind === 'server' ? spec.downSeconds : spec.cutSeconds) * 1000;
  // the fault comes within 5 s of the start; deadlines count from the start
  const programMs = 5000 + outage + spec.graceSeconds * 1000;
  const deliveryMs = programMs + spec.graceSeconds * 1000;
  return withResources(`wan-fault-${kind}`, deliveryMs + 180_000, async (res) => {
    const s = await openSession(cli, res, rateMBps, efficiency);
    if (kind === 'cut' && s.link.kind !== 'netns') throw new Error('a link cut needs network namespaces');
    const description =
      kind === 'server'
        ? `destination servers SIGKILLed mid-transfer, restarted ${spec.downSeconds} s later`
        : `link cut silently (${s.link.cutMethod}) mid-transfer for ${spec.cutSeconds} s`;
    progress(`  fault: ${description} ... `);
    await settleDisk();
    const t0 = now();
    const handles = s.approaches.map((a) => startTrial(res, a, { kind: 'burst', mib: spec.mib }, { programMs, deliveryMs }));
    // mid-transfer: every destination has some bytes (or 5 s have passed)
    while (now() - t0 < 5000 && !handles.every((h) => h.destBytes() > 0)) await sleep(50);
    const faultAtMs = now() - t0;
    if (kind === 'server') {
      s.ssh.kill();
      s.relay.kill();
      await sleep(outage);
      await Promise.all([s.ssh.restart(), s.relay.restart()]);
    } else {
      await s.link.cut();
      await sleep(outage);
      await s.link.restore();
    }
    const faultEndMs = now() - t0;
    const trials = await Promise.all(handles.map((h) => h.done));
    progress(trials.map((t) => `${t.approach} ${t.program.status}/${t.state}`).join(', ') + '\n');
    return { kind, description, faultAtMs, faultEndMs, trials };
  });
}

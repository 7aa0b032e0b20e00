import os from 'node:os';
import path from 'node:path';
import { BenchConfig } from '../config.js';
import { codeInfo, machineInfo } from '../machine.js';
import { withResources } from '../resources.js';
import { now } from '../stats.js';
import { burst, BurstPoint, REPEAT_MAX_FLOOR_MS } from './burst.js';
import { run } from './exec.js';
import { faultRun, FaultRun, FaultSpec } from './faults.js';
import { overlap, OverlapPoint, OverlapSpec, programRateMBps } from './overlap.js';
import { formatWan, WanRecord, writeWan } from './report.js';
import { ensurePeers, openSession } from './session.js';
import { checkTargets } from './targets.js';
import { POLL_MS } from './trial.js';

/**
 * The wide-area comparison (issue 6): sshfs, rclone, staging and kangaroo over
 * one emulated link: bursts, overlap of compute with output, and faults. Sizes
 * in quick mode keep it near a minute and a half.
 */

function overlapSpec(quick: boolean): OverlapSpec {
  // the program's output rate (MiB per compute burst) sits inside the swept rates,
  // so the sweep crosses from "link faster than the program" to "slower"
  return quick ? { outputs: 10, mib: 1, cpuMs: 100, ratesMBps: [4, 10, 40] } : { outputs: 10, mib: 5, cpuMs: 500, ratesMBps: [2.5, 5, 10, 20, 40] };
}

function faultSpec(config: BenchConfig): FaultSpec {
  return config.quick
    ? { mib: 20, downSeconds: 3, cutSeconds: config.wanCutSeconds, graceSeconds: 20 }
    : { mib: 100, downSeconds: 5, cutSeconds: config.wanCutSeconds, graceSeconds: 60 };
}

/** The first line of a tool's version output that matches `pick` (sshfs -V prints fusermount's first). */
async function version(cmd: string, args: string[], pick = /./): Promise<string> {
  const r = await run(cmd, args, 10_000);
  return (r.stdout + r.stderr).trim().split('\n').find((l) => pick.test(l)) ?? 'unknown';
}

export async function runWan(config: BenchConfig, cli: string, root: string, progress: (t: string) => void): Promise<WanRecord> {
  const startedAt = new Date();
  const t0 = now();
  const loadAtStart = os.loadavg();
  progress(`wide-area comparison (${config.quick ? 'quick' : 'normal'}): sshfs, rclone, staging, kangaroo over an emulated ${config.wanRate} MB/s link\n`);
  ensurePeers(progress);
  const tools = {
    kernel: os.release(),
    sshfs: (await version('sshfs', ['-V'], /^SSHFS version/)).replace(/^SSHFS version /, ''),
    rclone: (await version('rclone', ['version'])).replace(/^rclone /, ''),
    ssh: await version('ssh', ['-V']),
    fusermount: await version('fusermount', ['-V']),
  };
  const spec = overlapSpec(config.quick);
  const skipped: string[] = [];
  let burstPoints: BurstPoint[] = [];
  let overlapPoints: OverlapPoint[] = [];
  let linkInfo: WanRecord['link'] | undefined;
  let approaches: WanRecord['approaches'] = [];
  // seconds of link floor over every burst round (bursts with short floors run config.repeats times)
  const floorSum = config.wanBurstMib.reduce((sum, mib) => {
    const floor = (mib * 1.05) / config.wanRate;
    return sum + floor * (floor * 1000 <= REPEAT_MAX_FLOOR_MS ? config.repeats : 1);
  }, 0);
  const overlapSum = spec.ratesMBps.reduce((a, r) => a + (spec.outputs * spec.mib * 1.05) / r + (spec.outputs * spec.cpuMs) / 1000, 0);
  // four approaches, each up to three times its floor, plus set-up
  const budgetMs = (4 * 3 * (floorSum + overlapSum) + 180) * 1000;
  await withResources('wan', budgetMs, async (res) => {
    const s = await openSession(cli, res, config.wanRate);
    linkInfo = {
      kind: s.link.kind,
      rateMBps: config.wanRate,
      measuredMBps: s.measuredMBps,
      efficiency: s.efficiency,
      cutMethod: s.link.cutMethod,
      note: s.link.kind === 'netns' ? 'rate shaped by htb on both ends of the veth pair' : 'no network namespaces: each peer limits itself (kangaroo --bwlimit, rclone --bwlimit, scp -l; sshfs cannot)',
    };
    approaches = s.approaches.map((a) => ({ key: a.key, label: a.label, settings: a.settings }));
    progress(`  link: ${s.link.kind}, ${config.wanRate} MB/s nominal, measured ${s.measuredMBps.toFixed(2)} MB/s\n`);
    burstPoints = await burst(res, s, config.wanBurstMib, config.repeats, progress);
    if (s.link.kind === 'netns') {
      progress(`  overlap: program output rate ${programRateMBps(spec).toFixed(1)} MB/s\n`);
      overlapPoints = await overlap(res, s, spec, progress);
    } else skipped.push('overlap: varying the rate needs the shaped link (network namespaces)');
  });
  const faults: FaultRun[] = [];
  const fs = faultSpec(config);
  for (const kind of ['server', 'cut'] as const) {
    if (kind === 'cut' && linkInfo!.kind !== 'netns') {
      skipped.push('link cut: needs network namespaces');
      continue;
    }
    faults.push(await faultRun(cli, kind, fs, config.wanRate, linkInfo!.efficiency, progress));
  }
  const rec: WanRecord = {
    benchmark: 'wan',
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round(now() - t0) / 1000,
    mode: config.quick ? 'quick' : 'normal',
    machine: machineInfo(loadAtStart),
    code: codeInfo(root),
    tools,
    link: linkInfo!,
    approaches,
    burst: burstPoints,
    overlapSpec: overlapPoints.length > 0 ? spec : null,
    overlap: overlapPoints,
    faults,
    targets: checkTargets(burstPoints, overlapPoints),
    pollMs: POLL_MS,
    skipped,
  };
  const files = await writeWan(root, rec);
  process.stdout.write('\n' + formatWan(rec));
  process.stdout.write(
    `\n${rec.durationSeconds.toFixed(0)} s; results in ${path.relative(root, files.json)} (and bench-results/wan-latest.json)` +
      (files.svg ? `; plot ${path.relative(root, files.svg)} (and docs/turnaround.svg)` : '') +
      '\n',
  );
  return rec;
}

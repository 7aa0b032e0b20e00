import fsp from 'node:fs/promises';
import path from 'node:path';
import { BulkRun } from './bulk-frames.js';
import { BenchConfig } from './config.js';
import { DeliveryRun } from './delivery.js';
import { CodeInfo, MachineInfo } from './machine.js';
import { MountRun } from './mount.js';
import { PipelineRun } from './pipeline.js';
import { PutThrottledRun } from './put-throttled.js';
import { SmallFilesSummary } from './small-files.js';
import { Ratio, Series } from './stats.js';

/** The results of a run: the table on stdout and the JSON record in bench-results/. */

export interface BulkSummary {
  /** Second round on the same relays (they have been running): the figure. */
  opsPerSecond: Series;
  /** First round, on relays just started. */
  firstRoundOpsPerSecond: Series;
  /** From commit until the last file's push returned (second round). */
  deliveryMs: Series;
  runs: BulkRun[];
}

export interface PipelineSummary {
  /** Stages one after another through remote files (pushes included). */
  fileMs: Series;
  /** The same stages at once through grid buffers. */
  pipeMs: Series;
  /** pipe / file: lower is better; the target is a ceiling. */
  pipeVsFile: Ratio;
  /** Final outputs of both modes byte-identical in every run. */
  identicalEveryRun: boolean;
  runs: PipelineRun[];
}

export interface DeliverySummary {
  mbps: Series;
  vsTcp: Ratio;
  vsTcpFile: Ratio;
  vsDisk: Ratio;
  runs: DeliveryRun[];
}

export interface BenchResults {
  /** Second of two back-to-back passes (see baselines.ts); the first is kept too. */
  disk: Series;
  diskFirstPass: Series;
  put: {
    mbps: Series;
    vsDisk: Ratio;
    vsDiskFirstPass: Ratio;
    vsTcpFile: Ratio;
    heldAtCommitBytes: Series;
    deliveryPendingAtCommitEveryRun: boolean;
    pushMs: Series;
    endToEndMbps: Series;
    vsBwlimit: Ratio;
    runs: PutThrottledRun[];
  };
  tcp: Series;
  tcpFirstPass: Series;
  /** TCP copy whose far end writes the bytes to a file and fsyncs it. */
  tcpFile: Series;
  deliveryHop: DeliverySummary;
  deliveryDirect: DeliverySummary;
  /** The mover alone: data spooled at a first hop, delivered once the destination starts. */
  deliverySpooled: DeliverySummary;
  bulkNoBatching: BulkSummary;
  bulkBatching: BulkSummary;
  bulkVsNoBatching: Ratio;
  bulkVsNoBatchingFirstRound: Ratio;
  /** The same through a link with latency (a delay proxy between client and first hop). */
  bulkNoBatchingDelayed: BulkSummary;
  bulkBatchingDelayed: BulkSummary;
  bulkVsNoBatchingDelayed: Ratio;
  /** Null when skipped (--no-pipeline). */
  pipeline: PipelineSummary | null;
  /** Null when skipped (--no-mount). */
  mount: {
    writeMbps: Series;
    localWriteMbps: Series;
    nullFuseWriteMbps: Series;
    noWriteBehindMbps: Series;
    embeddedWriteMbps: Series;
    writeVsDisk: Ratio;
    embeddedWriteVsDisk: Ratio;
    writeVsNullFuse: Ratio;
    writeBehindVsNot: Ratio;
    rereadVsDisk: Ratio;
    rereadVsPageCache: Ratio;
    verifiedEveryRun: boolean;
    runs: MountRun[];
  } | null;
  /** Many small files through `kangaroo put` (both modes) and `cp -r` into a mount. */
  smallFiles: SmallFilesSummary;
}

export interface BenchRecord {
  benchmark: 'relay';
  startedAt: string;
  durationSeconds: number;
  mode: 'quick' | 'normal';
  config: BenchConfig;
  machine: MachineInfo;
  code: CodeInfo;
  results: BenchResults;
}

const rate = (v: number) => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} MB/s`;
const ops = (v: number) => `${Math.round(v).toLocaleString('en-US')} ops/s`;
// two significant digits below 0.1, so a small ratio does not print as 0.00
const num = (v: number) => (v >= 10 ? v.toFixed(1) : v >= 0.1 || v === 0 ? v.toFixed(2) : v.toPrecision(2));
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function ratioCells(r: Ratio, suffix = ''): [string, string, string] {
  const range = r.runs.length > 1 ? `${num(r.min)}-${num(r.max)}${suffix}` : '-';
  const max = r.bound === 'max';
  const target = r.target === null ? 'info' : `${max ? '<=' : '>='} ${num(r.target)}${suffix} ${r.met ? 'ok' : max ? 'ABOVE' : 'BELOW'}`;
  return [`${num(r.median)}${suffix}`, range, target];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}

export function formatReport(rec: BenchRecord): string {
  const { results: r, config: c, machine: m } = rec;
  const s = `${c.mib} MiB`;
  const base = '(baseline)';
  const rows: string[][] = [
    ['measurement', 'result', 'against', 'ratio', 'range', 'target'],
    [`1  local disk: write ${s} in 1 MiB chunks + fsync`, rate(r.disk.median), base, '', '', ''],
    [`2  put ${s} via first hop --bwlimit ${c.bwlimit}, until commit`, rate(r.put.mbps.median), `disk ${rate(r.disk.median)}`, ...ratioCells(r.put.vsDisk)],
    ['   the same put, against the first disk pass', rate(r.put.mbps.median), `disk ${rate(r.diskFirstPass.median)}`, ...ratioCells(r.put.vsDiskFirstPass)],
    ['   the same put, against a TCP copy into a file, fsync\'d', rate(r.put.mbps.median), `copy ${rate(r.tcpFile.median)}`, ...ratioCells(r.put.vsTcpFile)],
    [`3  TCP copy ${s} over loopback (node:net), discarded`, rate(r.tcp.median), base, '', '', ''],
    [`   TCP copy ${s} into a file at the far end, fsync'd`, rate(r.tcpFile.median), base, '', '', ''],
    ['   delivery from a first hop\'s spool (the mover alone)', rate(r.deliverySpooled.mbps.median), `copy ${rate(r.tcpFile.median)}`, ...ratioCells(r.deliverySpooled.vsTcpFile)],
    ['   the same, against the discarding TCP copy', rate(r.deliverySpooled.mbps.median), `TCP ${rate(r.tcp.median)}`, ...ratioCells(r.deliverySpooled.vsTcp)],
    ['   delivery via first hop, first put to push', rate(r.deliveryHop.mbps.median), `copy ${rate(r.tcpFile.median)}`, ...ratioCells(r.deliveryHop.vsTcpFile)],
    ['   delivery direct to destination relay', rate(r.deliveryDirect.mbps.median), `copy ${rate(r.tcpFile.median)}`, ...ratioCells(r.deliveryDirect.vsTcpFile)],
    ['   delivery via first hop, against disk', rate(r.deliveryHop.mbps.median), `disk ${rate(r.disk.median)}`, ...ratioCells(r.deliveryHop.vsDisk)],
    ['   delivery direct, against disk', rate(r.deliveryDirect.mbps.median), `disk ${rate(r.disk.median)}`, ...ratioCells(r.deliveryDirect.vsDisk)],
    [`4  ${c.bulkFiles} x ${c.bulkFileBytes / 1024} KiB files (truncate+put), no batching`, ops(r.bulkNoBatching.opsPerSecond.median), base, '', '', ''],
    ['   same with bulk frames (default client)', ops(r.bulkBatching.opsPerSecond.median), `no batching`, ...ratioCells(r.bulkVsNoBatching, 'x')],
    [`   no batching, client ${c.bulkDelayMs} ms from its relay (${2 * c.bulkDelayMs} ms round trips)`, ops(r.bulkNoBatchingDelayed.opsPerSecond.median), base, '', '', ''],
    ['   same with bulk frames', ops(r.bulkBatchingDelayed.opsPerSecond.median), `no batching`, ...ratioCells(r.bulkVsNoBatchingDelayed, 'x')],
  ];
  const sf = r.smallFiles;
  rows.push(
    [`4b kangaroo put --unbatched of the ${c.bulkFiles} files, one command`, ops(sf.putUnbatchedOpsPerSecond.median), base, '', '', ''],
    ['   kangaroo put of the same files (bulk frames)', ops(sf.putBatchedOpsPerSecond.median), '--unbatched', ...ratioCells(sf.putBatchedVsUnbatched, 'x')],
    ['   the same, less a one-file put (start-up, commit)', '', '--unbatched, less', ...ratioCells(sf.putBatchedVsUnbatchedMarginal, 'x')],
    [`   kangaroo put --unbatched, client ${c.bulkDelayMs} ms from its relay`, ops(sf.putUnbatchedDelayedOpsPerSecond.median), base, '', '', ''],
    ['   kangaroo put (bulk frames), the same client', ops(sf.putBatchedDelayedOpsPerSecond.median), '--unbatched', ...ratioCells(sf.putBatchedVsUnbatchedDelayed, 'x')],
  );
  if (sf.mount) {
    rows.push(
      [`   cp -r of the ${c.bulkFiles} files into MOUNT/kangaroo/DEST`, ops(sf.mount.opsPerSecond.median), 'kangaroo put', ...ratioCells(sf.mount.vsPutBatched, 'x')],
      ['   the same, against cp -r to a local directory', `${Math.round(sf.mount.filesPerSecond.median)} files/s`, `local ${Math.round(sf.mount.localFilesPerSecond.median)} files/s`, ...ratioCells(sf.mount.vsLocalCp, 'x')],
    );
  }
  const pl = r.pipeline;
  if (pl) {
    const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    rows.push(
      [`5  pipeline, 3 python stages x ${c.pipelineRecords} records: files, one after another`, secs(pl.fileMs.median), base, '', '', ''],
      ['   the same programs and names as grid buffers, at once', secs(pl.pipeMs.median), `files ${secs(pl.fileMs.median)}`, ...ratioCells(pl.pipeVsFile)],
    );
  }
  const mt = r.mount;
  if (mt) {
    const last = mt.runs[mt.runs.length - 1]!;
    rows.push(
      [`6  dd ${c.mountMib} MiB bs=1M to local disk, conv=fsync`, rate(mt.localWriteMbps.median), base, '', '', ''],
      [`   dd into MOUNT/kangaroo/DEST (first hop --bwlimit ${c.bwlimit})`, rate(mt.writeMbps.median), `disk ${rate(mt.localWriteMbps.median)}`, ...ratioCells(mt.writeVsDisk)],
      [`   dd into a mount with its embedded relay (--bwlimit ${c.bwlimit})`, rate(mt.embeddedWriteMbps.median), `disk ${rate(mt.localWriteMbps.median)}`, ...ratioCells(mt.embeddedWriteVsDisk)],
      ['   the same (first hop), against a null FUSE file system', rate(mt.writeMbps.median), `null ${rate(mt.nullFuseWriteMbps.median)}`, ...ratioCells(mt.writeVsNullFuse)],
      ['   the same (first hop), against a mount with --no-write-behind', rate(mt.writeMbps.median), `off ${rate(mt.noWriteBehindMbps.median)}`, ...ratioCells(mt.writeBehindVsNot, 'x')],
      ['   re-read of a cached file through the mount', rate(last.mountRereadMbps), `disk ${rate(last.localDiskReadMbps)}`, ...ratioCells(mt.rereadVsDisk)],
      ['   the same, against the page cache', rate(last.mountRereadMbps), `cache ${rate(last.localCachedReadMbps)}`, ...ratioCells(mt.rereadVsPageCache)],
    );
  }
  const held = r.put.runs.map((x) => mib(x.heldAtCommit)).join(', ');
  const notes = [
    `2  at commit the destination held ${held} of ${s}: delivery still pending ` +
      `${r.put.deliveryPendingAtCommitEveryRun ? 'in every run' : 'NOT in every run (the put was not faster than the link)'}; ` +
      `push then took ${(r.put.pushMs.median / 1000).toFixed(1)} s more; ` +
      `first put to push ${rate(r.put.endToEndMbps.median)} = ${num(r.put.vsBwlimit.median)} of --bwlimit ${c.bwlimit}`,
    `   every delivered file was checked at the destination (size and sha256)`,
    `1,3 baselines are the second of two back-to-back passes; first passes: disk ${rate(r.diskFirstPass.median)}, TCP ${rate(r.tcpFirstPass.median)}`,
    `4  figures are a second round on relays already used once; first round on just-started relays: ` +
      `${ops(r.bulkNoBatching.firstRoundOpsPerSecond.median)} without, ${ops(r.bulkBatching.firstRoundOpsPerSecond.median)} with batching ` +
      `(${num(r.bulkVsNoBatchingFirstRound.median)}x)`,
    `   delivery of the ${c.bulkFiles} files to the destination after commit: ${(r.bulkNoBatching.deliveryMs.median / 1000).toFixed(2)} s (no batching), ` +
      `${(r.bulkBatching.deliveryMs.median / 1000).toFixed(2)} s (batching)`,
    `   without batching each truncate waits for its answer, so its cost is the round trip: ~0.1 ms over loopback, ` +
      `${2 * c.bulkDelayMs} ms through the delay proxy (this kernel has no netem; the proxy delays every chunk ${c.bulkDelayMs} ms each way)`,
    `4b wall time of each command; a one-file kangaroo put took ${(sf.oneFileMs.median / 1000).toFixed(2)} s (node start-up, connect, commit); ` +
      `ops are a truncate and a put per file` +
      (sf.mount
        ? `; the mount ${sf.mount.batchingSwitch ? 'has' : 'has no'} switch for its client's batching, so its figure is with bulk frames only ` +
          `(it stats each new name, awaits each create, and commits to the spool at each close)`
        : '') +
      `; every file counted at the destination ${sf.verifiedEveryRun ? 'in every run' : 'NOT in every run'}`,
  ];
  if (pl) {
    const last = pl.runs[pl.runs.length - 1]!;
    const list = (v: number[]) => v.map((x) => (x / 1000).toFixed(2)).join(' / ');
    notes.push(
      `5  ${c.pipelineMsPerRecord} ms of compute per record and stage; stages 1 and 3 on mount m1 (relay A), stage 2 on mount m2 (relay B); ` +
        `only the name service file differs between the modes (remote files on a destination relay / buffers on A and B)`,
      `   last run: file mode stages ${list(last.fileStageMs)} s, pushes ${list(last.filePushMs)} s; ` +
        `pipe mode stages ended at ${list(last.pipeStageEndMs)} s; final outputs ${pl.identicalEveryRun ? 'byte-identical in every run' : 'DIFFERENT'} ` +
        `(${last.finalBytes} bytes, sha256 ${last.finalSha256.slice(0, 16)}…); buffer relays' peak RSS ` +
        last.bufferRelayPeakRssBytes.map((b) => `${(b / 1e6).toFixed(0)} MB`).join(' / '),
    );
  }
  const header =
    `kangaroo ${rec.code.version} relay benchmark, ${rec.mode} mode, ` +
    `${c.repeats === 1 ? '1 run' : `median of ${c.repeats} runs`} (ratios are per run, then the median)\n` +
    `${m.cpuCount} x ${m.cpuModel}, ${(m.totalMemoryBytes / 1024 ** 3).toFixed(1)} GiB, node ${m.node}, ${m.platform} ${m.kernel}` +
    (rec.code.commit ? `, commit ${rec.code.commit.slice(0, 10)}${rec.code.dirty ? ' (dirty)' : ''}` : '');
  // at the end the load includes this benchmark's own processes; at the start it is everyone else
  const load = m.loadAverageAtStart[0] ?? 0;
  const warning =
    load > m.cpuCount / 2
      ? `\nWARNING: the machine was busy before the benchmark started (1-minute load average ${load.toFixed(1)} on ${m.cpuCount} CPUs): ` +
        `expect noisy figures; compare the ranges, not single numbers.\n`
      : '';
  return `${header}\n\n${table(rows)}\n\n${notes.join('\n')}\n${warning}`;
}

/**
 * Writes a run's record as bench-results/<prefix>-<timestamp>.json and as `latest`
 * (bench-results/<latest>); returns the first, and the timestamp used in its name.
 */
export async function writeResultFiles(root: string, prefix: string, latest: string, startedAt: string, rec: unknown): Promise<{ file: string; dir: string; stamp: string }> {
  const dir = path.join(root, 'bench-results');
  await fsp.mkdir(dir, { recursive: true });
  const stamp = startedAt.replace(/[:.]/g, '-');
  const file = path.join(dir, `${prefix}-${stamp}.json`);
  const text = JSON.stringify(rec, null, 2) + '\n';
  await fsp.writeFile(file, text);
  await fsp.writeFile(path.join(dir, latest), text);
  return { file, dir, stamp };
}

/** Writes bench-results/relay-<timestamp>.json and bench-results/latest.json; returns the first. */
export async function writeRecord(root: string, rec: BenchRecord): Promise<string> {
  return (await writeResultFiles(root, 'relay', 'latest.json', rec.startedAt, rec)).file;
}

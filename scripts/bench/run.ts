import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Baseline, diskWrite, tcpCopy, tcpFileCopy } from './baselines.js';
import { bulkFrames, BulkRun } from './bulk-frames.js';
import { BenchConfig } from './config.js';
import { makePayload } from './data.js';
import { delivery, DeliveryRun } from './delivery.js';
import { startBench } from './entry.js';
import { codeInfo, machineInfo } from './machine.js';
import { mountFigures, MountRun } from './mount.js';
import { pipeline, PipelineRun } from './pipeline.js';
import { putThrottled, PutThrottledRun } from './put-throttled.js';
import { smallFiles, SmallFilesRun, smallFilesSummary } from './small-files.js';
import { BenchRecord, BenchResults, formatReport, writeRecord } from './report.js';
import { interrupted, Resources, withResources } from './resources.js';
import { parseBytes } from '../../src/util/units.js';
import { now, ratio, series } from './stats.js';
import { runWan } from './wan/wan.js';

/**
 * `npm run bench`: the relay's figures, each as a ratio against a baseline measured
 * in the same run (the machine is shared and noisy). Every repeat measures all
 * baselines and all relay figures back to back, so a ratio pairs figures taken
 * close together; the report gives the median of those per-repeat ratios.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..'); // dist-bench/scripts/bench -> project root
const sinkScript = path.join(here, 'tcp-sink.js');

function progress(text: string): void {
  process.stderr.write(text);
}

async function measure(config: BenchConfig, cli: string): Promise<BenchResults> {
  const payload = makePayload(config.mib);
  const bytes = payload.bytes;
  const bwlimitBytes = parseBytes(config.bwlimit);
  const raw = {
    disk: [] as Baseline[],
    put: [] as PutThrottledRun[],
    tcp: [] as Baseline[],
    tcpFile: [] as Baseline[],
    hop: [] as DeliveryRun[],
    direct: [] as DeliveryRun[],
    spooled: [] as DeliveryRun[],
    bulkOff: [] as BulkRun[],
    bulkOn: [] as BulkRun[],
    bulkOffDelay: [] as BulkRun[],
    bulkOnDelay: [] as BulkRun[],
    pipeline: [] as PipelineRun[],
    mount: [] as MountRun[],
    small: [] as SmallFilesRun[],
  };
  const step = async <T>(label: string, timeoutMs: number, body: (res: Resources) => Promise<T>, show: (v: T) => string) => {
    progress(`  ${label} ... `);
    const v = await withResources(label.replace(/\W+/g, '-'), timeoutMs, body);
    progress(`${show(v)}\n`);
    return v;
  };
  const mb = (v: number) => `${v.toFixed(0)} MB/s`;
  for (let rep = 1; rep <= config.repeats; rep++) {
    progress(`run ${rep} of ${config.repeats}\n`);
    const baselineText = (v: Baseline) => `${mb(v.mbps)} (first pass ${mb(v.firstPassMbps)})`;
    raw.disk.push(await step('disk write', 120_000 + bytes / 10e3, (res) => diskWrite(res, payload), baselineText));
    raw.put.push(
      await step('put via throttled first hop', 60_000 + (3 * bytes * 1000) / bwlimitBytes, (res) => putThrottled(cli, res, payload, config.bwlimit), (v) =>
        `${mb(v.mbps)} until commit, destination had ${(v.heldAtCommit / 2 ** 20).toFixed(1)} MiB; push ${(v.pushMs / 1000).toFixed(1)} s`,
      ),
    );
    raw.tcp.push(await step('tcp copy', 60_000 + bytes / 10e3, (res) => tcpCopy(res, sinkScript, payload), baselineText));
    raw.tcpFile.push(await step('tcp copy to a file, fsync', 60_000 + bytes / 5e3, (res) => tcpFileCopy(res, sinkScript, payload), baselineText));
    raw.hop.push(await step('delivery via first hop', 60_000 + bytes / 5e3, (res) => delivery(cli, res, payload, 'first hop'), (v) => mb(v.mbps)));
    raw.direct.push(await step('delivery direct', 60_000 + bytes / 5e3, (res) => delivery(cli, res, payload, 'direct'), (v) => mb(v.mbps)));
    raw.spooled.push(await step('delivery from a spool (mover alone)', 60_000 + bytes / 5e3, (res) => delivery(cli, res, payload, 'spooled'), (v) => mb(v.mbps)));
    const bulk = (batching: boolean, delayMs = 0) => (res: Resources) =>
      bulkFrames(cli, res, config.bulkFiles, config.bulkFileBytes, batching, delayMs);
    const opsText = (v: BulkRun) =>
      `${Math.round(v.opsPerSecond)} ops/s (first round ${Math.round(v.firstRound.opsPerSecond)}); delivery ${(v.deliveryMs / 1000).toFixed(1)} s`;
    raw.bulkOff.push(await step('bulk, no batching', 120_000, bulk(false), opsText));
    raw.bulkOn.push(await step('bulk, batching', 120_000, bulk(true), opsText));
    const rtt = `${2 * config.bulkDelayMs} ms round trips`;
    // time the unbatched ops of the files take through the delay proxy, with room to spare
    const unbatchedDelayMs = 4 * config.bulkFiles * config.bulkDelayMs * 2;
    raw.bulkOffDelay.push(await step(`bulk over ${rtt}, no batching`, 120_000 + unbatchedDelayMs, bulk(false, config.bulkDelayMs), opsText));
    raw.bulkOnDelay.push(await step(`bulk over ${rtt}, batching`, 120_000, bulk(true, config.bulkDelayMs), opsText));
    raw.small.push(
      await step(`small files: kangaroo put${config.mount ? ', cp -r into a mount' : ''}`, 300_000 + unbatchedDelayMs, (res) => smallFiles(cli, res, config.bulkFiles, config.bulkFileBytes, config.mount, config.bulkDelayMs), (v) =>
        `put ${Math.round(v.putBatched.opsPerSecond)} ops/s, --unbatched ${Math.round(v.putUnbatched.opsPerSecond)}; ` +
        `${2 * v.delayMs} ms round trips: put ${Math.round(v.putBatchedDelayed.opsPerSecond)}, --unbatched ${Math.round(v.putUnbatchedDelayed.opsPerSecond)}` +
        (v.mount ? `; cp -r into the mount ${Math.round(v.mount.filesPerSecond)} files/s` : ''),
      ),
    );
    if (config.pipeline) {
      // sequential file mode takes about 3 x records x ms, plus start-up of 3 relays and 2 mounts
      const budget = 90_000 + 10 * config.pipelineRecords * config.pipelineMsPerRecord;
      raw.pipeline.push(
        await step('pipeline, files then buffers', budget, (res) => pipeline(cli, res, config.pipelineRecords, config.pipelineMsPerRecord), (v) =>
          `files ${(v.fileMs / 1000).toFixed(2)} s, pipe ${(v.pipeMs / 1000).toFixed(2)} s (${v.ratio.toFixed(2)}), outputs identical`,
        ),
      );
    }
    if (config.mount) {
      raw.mount.push(
        await step('mount: dd through it, re-read', 180_000 + config.mountMib * 200, (res) => mountFigures(cli, res, config.mountMib, config.bwlimit), (v) =>
          `dd ${mb(v.mountWriteMbps)}, embedded relay ${mb(v.mountEmbeddedWriteMbps)} (local ${mb(v.localWriteMbps)}, null FUSE ${mb(v.nullFuseWriteMbps)}, no write-behind ${mb(v.mountNoWriteBehindMbps)}); re-read ${mb(v.mountRereadMbps)}`,
        ),
      );
    }
  }

  const disk = raw.disk.map((r) => r.mbps);
  const tcp = raw.tcp.map((r) => r.mbps);
  const put = raw.put.map((r) => r.mbps);
  const hop = raw.hop.map((r) => r.mbps);
  const direct = raw.direct.map((r) => r.mbps);
  const spooled = raw.spooled.map((r) => r.mbps);
  const tcpFile = raw.tcpFile.map((r) => r.mbps);
  const on = raw.bulkOn.map((r) => r.opsPerSecond);
  const off = raw.bulkOff.map((r) => r.opsPerSecond);
  const onFirst = raw.bulkOn.map((r) => r.firstRound.opsPerSecond);
  const offFirst = raw.bulkOff.map((r) => r.firstRound.opsPerSecond);
  const endToEnd = raw.put.map((r) => r.endToEndMbps);
  return {
    disk: series('MB/s', disk),
    diskFirstPass: series('MB/s', raw.disk.map((r) => r.firstPassMbps)),
    put: {
      mbps: series('MB/s', put),
      // no target: the 0.6 of local disk is for a burst through the mount (6 and the
      // wide-area bursts); a put to a separate relay process pays a socket between two
      // processes, the work of the TCP copy into an fsync'd file it is also shown against
      vsDisk: ratio('put until commit (throttled first hop)', 'local disk write + fsync', put, disk, null),
      vsTcpFile: ratio('put until commit (throttled first hop)', 'TCP copy to a file, fsync', put, tcpFile, null),
      vsDiskFirstPass: ratio('put until commit (throttled first hop)', 'local disk write + fsync, first pass', put, raw.disk.map((r) => r.firstPassMbps), null),
      heldAtCommitBytes: series('bytes', raw.put.map((r) => r.heldAtCommit)),
      deliveryPendingAtCommitEveryRun: raw.put.every((r) => r.deliveryPendingAtCommit),
      pushMs: series('ms', raw.put.map((r) => r.pushMs)),
      endToEndMbps: series('MB/s', endToEnd),
      vsBwlimit: ratio('first put to push (throttled first hop)', `--bwlimit ${config.bwlimit}`, endToEnd, endToEnd.map(() => bwlimitBytes / 1e6), null),
      runs: raw.put,
    },
    tcp: series('MB/s', tcp),
    tcpFirstPass: series('MB/s', raw.tcp.map((r) => r.firstPassMbps)),
    tcpFile: series('MB/s', tcpFile),
    deliveryHop: {
      mbps: series('MB/s', hop),
      vsTcp: ratio('delivery via first hop', 'TCP copy over loopback', hop, tcp, null),
      vsTcpFile: ratio('delivery via first hop', 'TCP copy to a file, fsync', hop, tcpFile, null),
      vsDisk: ratio('delivery via first hop', 'local disk write + fsync', hop, disk, null),
      runs: raw.hop,
    },
    // the figure: the mover's delivery against a plain TCP copy that, like it, ends with the file safe
    deliverySpooled: {
      mbps: series('MB/s', spooled),
      vsTcp: ratio('delivery from a spool (mover alone)', 'TCP copy over loopback (discarded)', spooled, tcp, null),
      vsTcpFile: ratio('delivery from a spool (mover alone)', 'TCP copy to a file, fsync', spooled, tcpFile, 0.7),
      vsDisk: ratio('delivery from a spool (mover alone)', 'local disk write + fsync', spooled, disk, null),
      runs: raw.spooled,
    },
    deliveryDirect: {
      mbps: series('MB/s', direct),
      vsTcp: ratio('delivery direct to destination', 'TCP copy over loopback', direct, tcp, null),
      vsTcpFile: ratio('delivery direct to destination', 'TCP copy to a file, fsync', direct, tcpFile, null),
      vsDisk: ratio('delivery direct to destination', 'local disk write + fsync', direct, disk, null),
      runs: raw.direct,
    },
    bulkNoBatching: bulkSummary(raw.bulkOff),
    bulkBatching: bulkSummary(raw.bulkOn),
    bulkVsNoBatching: ratio('bulk frames (batching client)', 'one frame per op (batching: false)', on, off, null),
    bulkNoBatchingDelayed: bulkSummary(raw.bulkOffDelay),
    bulkBatchingDelayed: bulkSummary(raw.bulkOnDelay),
    bulkVsNoBatchingDelayed: ratio(
      `bulk frames, client ${config.bulkDelayMs} ms from its relay`,
      `one frame per op, client ${config.bulkDelayMs} ms from its relay`,
      raw.bulkOnDelay.map((r) => r.opsPerSecond),
      raw.bulkOffDelay.map((r) => r.opsPerSecond),
      5,
    ),
    bulkVsNoBatchingFirstRound: ratio('bulk frames, first round on new relays', 'one frame per op, first round on new relays', onFirst, offFirst, null),
    pipeline: raw.pipeline.length > 0 ? pipelineSummary(raw.pipeline) : null,
    mount: raw.mount.length > 0 ? mountSummary(raw.mount) : null,
    smallFiles: smallFilesSummary(raw.small),
  };
}

function mountSummary(runs: MountRun[]): NonNullable<BenchResults['mount']> {
  const pick = (f: (r: MountRun) => number) => runs.map(f);
  return {
    writeMbps: series('MB/s', pick((r) => r.mountWriteMbps)),
    localWriteMbps: series('MB/s', pick((r) => r.localWriteMbps)),
    nullFuseWriteMbps: series('MB/s', pick((r) => r.nullFuseWriteMbps)),
    noWriteBehindMbps: series('MB/s', pick((r) => r.mountNoWriteBehindMbps)),
    embeddedWriteMbps: series('MB/s', pick((r) => r.mountEmbeddedWriteMbps)),
    writeVsDisk: ratio('dd through the mount, first hop throttled', 'dd to local disk with conv=fsync', pick((r) => r.mountWriteMbps), pick((r) => r.localWriteMbps), 0.6),
    embeddedWriteVsDisk: ratio('dd through a mount with its embedded relay, throttled', 'dd to local disk with conv=fsync', pick((r) => r.mountEmbeddedWriteMbps), pick((r) => r.localWriteMbps), 0.6),
    writeVsNullFuse: ratio('dd through the mount', 'dd into a null FUSE file system', pick((r) => r.mountWriteMbps), pick((r) => r.nullFuseWriteMbps), null),
    writeBehindVsNot: ratio('dd through the mount', 'dd through a mount with --no-write-behind', pick((r) => r.mountWriteMbps), pick((r) => r.mountNoWriteBehindMbps), null),
    rereadVsDisk: ratio('re-reading a cached file through the mount', 'reading a local file from disk (O_DIRECT)', pick((r) => r.mountRereadMbps), pick((r) => r.localDiskReadMbps), 0.8),
    rereadVsPageCache: ratio('re-reading a cached file through the mount', 'reading a local file from the page cache', pick((r) => r.mountRereadMbps), pick((r) => r.localCachedReadMbps), null),
    verifiedEveryRun: runs.every((r) => r.verified),
    runs,
  };
}

function pipelineSummary(runs: PipelineRun[]): NonNullable<BenchResults['pipeline']> {
  const file = runs.map((r) => r.fileMs);
  const pipe = runs.map((r) => r.pipeMs);
  return {
    fileMs: series('ms', file),
    pipeMs: series('ms', pipe),
    pipeVsFile: ratio('three-stage pipeline through grid buffers, stages at once', 'the same stages through remote files, one after another', pipe, file, 0.6, 'max'),
    identicalEveryRun: runs.every((r) => r.identical),
    runs,
  };
}

function bulkSummary(runs: BulkRun[]): BenchResults['bulkBatching'] {
  return {
    opsPerSecond: series('ops/s', runs.map((r) => r.opsPerSecond)),
    firstRoundOpsPerSecond: series('ops/s', runs.map((r) => r.firstRound.opsPerSecond)),
    deliveryMs: series('ms', runs.map((r) => r.deliveryMs)),
    runs,
  };
}

async function main(): Promise<void> {
  const started = startBench(root);
  if (!started) return;
  const { config, cli } = started;
  const startedAt = new Date();
  const t0 = now();
  const loadAtStart = os.loadavg();
  progress(
    `kangaroo relay benchmark (${config.quick ? 'quick' : 'normal'}): ${config.repeats} run(s), ${config.mib} MiB, ` +
      `${config.bulkFiles} small files` +
      (config.pipeline ? `, pipeline of ${config.pipelineRecords} records x ${config.pipelineMsPerRecord} ms` : '') +
      `; relays from ${path.relative(root, cli)}\n`,
  );
  const results = await measure(config, cli);
  const rec: BenchRecord = {
    benchmark: 'relay',
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round(now() - t0) / 1000,
    mode: config.quick ? 'quick' : 'normal',
    config,
    machine: machineInfo(loadAtStart),
    code: codeInfo(root),
    results,
  };
  const file = await writeRecord(root, rec);
  process.stdout.write('\n' + formatReport(rec));
  process.stdout.write(`\n${rec.durationSeconds.toFixed(0)} s; results in ${path.relative(root, file)} (and bench-results/latest.json)\n`);
  // the wide-area comparison: its own record (bench-results/wan-*.json), after the relay's
  if (config.wan) {
    progress('\n');
    await runWan(config, cli, root, progress);
  }
}

main().catch((err: unknown) => {
  if (interrupted()) return; // the exit handler reports and exits
  process.stderr.write(`\nbenchmark failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

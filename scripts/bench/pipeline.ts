import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { RelayClient } from '../../src/client/client.js';
import { startMount } from './mount-process.js';
import { startRelay } from './relay-process.js';
import { Resources } from './resources.js';
import { now } from './stats.js';

/**
 * The GriddLeS atmospheric chain in small: three unmodified programs (python
 * scripts) that compute between reads and writes. Stage 1 makes N records and
 * writes each as soon as it is computed; stage 2 reads stage 1's output line by
 * line, computes and writes; stage 3 reads stage 2's output, computes and writes
 * the final result to a local file.
 *
 * The programs only ever see /pipe/s1 and /pipe/s2 under their mount; the name
 * service decides what those are:
 * - file mode: `remote` files on a destination relay; the stages run one after
 *   another, each hand-over being a push (stage 2 and stage 3 read through
 *   another relay, so the file must have arrived);
 * - pipe mode: `buffer`s (s1 on relay A, s2 on relay B); all three stages run at
 *   once and each reads records as the one before writes them.
 * Stages 1 and 3 run on mount m1 (relay A), stage 2 on mount m2 (relay B), as on
 * two hosts. The final outputs of both modes must be identical.
 *
 * Each record's "compute" is a fixed amount of hashing (the result) plus a busy
 * loop up to a fixed wall time: the stages stand for programs on three hosts, and
 * a busy loop by CPU count would make three stages on a 2-core machine measure
 * the CPU count, not the overlap.
 */

export interface PipelineRun {
  records: number;
  msPerRecord: number;
  /** File mode, stage 1 start to stage 3 exit, pushes included. */
  fileMs: number;
  fileStageMs: number[];
  filePushMs: number[];
  /** Pipe mode, the three stages started together, until the last one exited. */
  pipeMs: number;
  /** Pipe mode: when each stage exited, from the common start. */
  pipeStageEndMs: number[];
  ratio: number;
  identical: boolean;
  finalBytes: number;
  finalSha256: string;
  /** Peak resident set (VmHWM) of the relays hosting the buffers, after the pipe run. */
  bufferRelayPeakRssBytes: number[];
}

const COMPUTE = String.raw`
import hashlib, sys, time

def compute(text, seconds):
    """A fixed amount of hashing (the result), then a busy loop up to the record's wall time."""
    deadline = time.perf_counter() + seconds
    h = text.encode()
    for _ in range(100):
        h = hashlib.sha256(h).digest()
    spins = 0
    while time.perf_counter() < deadline:
        spins += 1
    return h.hex()[:24]
`;

const STAGE1 = String.raw`
# stage 1: OUT N MS -- generate N records, write each as soon as it is computed
out, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000
with open(out, 'w') as f:
    for i in range(n):
        f.write(f'{i} {compute(f"seed-{i}", seconds)}\n')
        f.flush()
`;

const STAGE_N = String.raw`
# stages 2 and 3: IN OUT MS -- read records line by line, compute, write each result
src, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000
with open(src) as f, open(out, 'w') as o:
    for line in f:
        i, value = line.split()[:2]
        o.write(f'{i} {compute(value, seconds)} {value}\n')
        o.flush()
`;

interface Stage {
  name: string;
  script: string;
  args: string[];
}

function runStage(res: Resources, stage: Stage): Promise<number> {
  const t0 = now();
  const child = spawn('python3', [stage.script, ...stage.args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (err.length < 16 * 1024) err += d.toString();
  });
  res.track({ name: stage.name, child, output: () => err });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve(now() - t0);
      else reject(new Error(`${stage.name} exited with ${code ?? signal}: ${err.trim()}`));
    });
  });
}

async function writeGns(file: string, lines: string[]): Promise<void> {
  // whole file, then rename: a mount never reads half of it, and sees the change at the next open
  await fsp.writeFile(`${file}.tmp`, lines.join('\n') + '\n');
  await fsp.rename(`${file}.tmp`, file);
}

function peakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function sha256File(file: string): Promise<{ bytes: number; sha256: string }> {
  const data = await fsp.readFile(file);
  return { bytes: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') };
}

export async function pipeline(cli: string, res: Resources, records: number, msPerRecord: number): Promise<PipelineRun> {
  const dir = await res.tempDir();
  const scripts = {
    s1: path.join(dir, 'stage1.py'),
    sn: path.join(dir, 'stage-n.py'),
  };
  await fsp.writeFile(scripts.s1, COMPUTE + STAGE1);
  await fsp.writeFile(scripts.sn, COMPUTE + STAGE_N);
  const dest = await startRelay(cli, res, 'destination', { export: true });
  const a = await startRelay(cli, res, 'pipe host A');
  const b = await startRelay(cli, res, 'pipe host B');
  const gns = path.join(dir, 'names.gns');
  await writeGns(gns, []);
  const m1 = await startMount(cli, res, 'm1 (relay A)', a.address, gns);
  const m2 = await startMount(cli, res, 'm2 (relay B)', b.address, gns);
  const on = (m: { mountpoint: string }, name: string) => path.join(m.mountpoint, 'pipe', name);
  const ms = String(msPerRecord);
  const stages = (final: string): Stage[] => [
    { name: 'stage 1', script: scripts.s1, args: [on(m1, 's1'), String(records), ms] },
    { name: 'stage 2', script: scripts.sn, args: [on(m2, 's1'), on(m2, 's2'), ms] },
    { name: 'stage 3', script: scripts.sn, args: [on(m1, 's2'), final, ms] },
  ];

  // file mode: one stage after another, handing over through delivered files
  const fileFinal = path.join(dir, 'final-file.txt');
  await writeGns(gns, [
    `/pipe/s1 remote kangaroo://${dest.address}/pipeline/s1`,
    `/pipe/s2 remote kangaroo://${dest.address}/pipeline/s2`,
  ]);
  const clientA = await RelayClient.connect(a.address);
  const clientB = await RelayClient.connect(b.address);
  const fileStageMs: number[] = [];
  const filePushMs: number[] = [];
  let fileMs: number;
  try {
    const [st1, st2, st3] = stages(fileFinal);
    const t0 = now();
    fileStageMs.push(await runStage(res, st1!));
    let tp = now();
    await clientA.push(dest.address, '/pipeline/s1');
    filePushMs.push(now() - tp);
    fileStageMs.push(await runStage(res, st2!));
    tp = now();
    await clientB.push(dest.address, '/pipeline/s2');
    filePushMs.push(now() - tp);
    fileStageMs.push(await runStage(res, st3!));
    fileMs = now() - t0;
  } finally {
    clientA.destroy();
    clientB.destroy();
  }

  // pipe mode: the same programs and names, all at once
  const pipeFinal = path.join(dir, 'final-pipe.txt');
  await writeGns(gns, [`/pipe/s1 buffer buffer://${a.address}/s1`, `/pipe/s2 buffer buffer://${b.address}/s2`]);
  const t0 = now();
  const pipeStageEndMs = await Promise.all(stages(pipeFinal).map((s) => runStage(res, s).then(() => now() - t0)));
  const pipeMs = now() - t0;

  const f = await sha256File(fileFinal);
  const p = await sha256File(pipeFinal);
  const lines = (await fsp.readFile(pipeFinal, 'utf8')).split('\n').filter(Boolean).length;
  if (lines !== records) throw new Error(`pipe mode: the final output has ${lines} records, not ${records}`);
  if (f.sha256 !== p.sha256) throw new Error(`the final outputs differ: file mode ${f.bytes} bytes ${f.sha256}, pipe mode ${p.bytes} bytes ${p.sha256}`);
  return {
    records,
    msPerRecord,
    fileMs,
    fileStageMs,
    filePushMs,
    pipeMs,
    pipeStageEndMs,
    ratio: pipeMs / fileMs,
    identical: true,
    finalBytes: p.bytes,
    finalSha256: p.sha256,
    bufferRelayPeakRssBytes: [peakRss(a.pid), peakRss(b.pid)],
  };
}

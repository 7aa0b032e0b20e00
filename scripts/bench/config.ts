import { parseArgs } from 'node:util';

/** What one run of the benchmark measures, from the command line. */
export interface BenchConfig {
  quick: boolean;
  repeats: number;
  /** S: MiB written by the disk baseline, the throttled put and the delivery runs. */
  mib: number;
  /** --bwlimit of the throttled first hop. */
  bwlimit: string;
  /** Number of small files in the bulk-frame runs (measurement 4). */
  bulkFiles: number;
  bulkFileBytes: number;
  /** One-way delay of the link in the second bulk measurement (client to first hop). */
  bulkDelayMs: number;
  /** Measurement 5, the three-stage pipeline (files one after another against grid buffers at once). */
  pipeline: boolean;
  pipelineRecords: number;
  pipelineMsPerRecord: number;
  /** Measurement 6, the mount: dd through it, re-reads. */
  mount: boolean;
  mountMib: number;
  /** The wide-area comparison (scripts/bench/wan): sshfs, rclone, staging and kangaroo over an emulated link. */
  wan: boolean;
  /** Link rate for its burst and fault runs, MB/s. */
  wanRate: number;
  /** Burst sizes, MiB. */
  wanBurstMib: number[];
  /** How long the link is cut in the fault run, seconds. */
  wanCutSeconds: number;
}

export const USAGE = `Usage: npm run bench -- [options]

Measures the relay against baselines taken in the same run and prints ratios.
  --quick            small sizes, one repeat (under 3 minutes with the wide-area part)
  --repeats N        repeat every measurement N times and report medians (default 3, quick 1)
  --mib N            MiB written by the disk, put and delivery measurements (default 256, quick 32)
  --bulk-files N     small files in the bulk-frame runs (default 1000)
  --bulk-delay-ms N  one-way delay of the link in the second bulk run (default 2: a 4 ms round trip)
  --pipeline         run the three-stage pipeline measurement (the default)
  --no-pipeline      skip it (it needs FUSE and python3)
  --pipeline-records N   records through the pipeline (default 200, quick 60)
  --pipeline-ms N    compute per record and stage, in ms (default 20)
  --no-mount         skip measurement 6, the mount (it needs FUSE)
  --mount-mib N      MiB dd writes through the mount (default 1024, quick 128)
  --no-wan           skip the wide-area comparison (sshfs, rclone, staging, kangaroo over an
                     emulated link; needs root, network namespaces and FUSE; installs its peers
                     with scripts/bench/wan/setup-peers.sh when missing). "npm run bench:wan" runs it alone
  --wan-rate N       its link rate for the burst and fault runs, MB/s (default 10)
  --wan-burst N,N    its burst sizes, MiB (default 10,100,1000; quick 10,50); a burst whose link floor is
                     under 30 s runs --repeats rounds, baselines and approaches taking turns, medians reported
  --wan-cut N        seconds the link is cut in its fault run (default 30, quick 8)
  --help             this text

Relays run from dist/cli/main.js: run "npm run build" after changing src/.
Results: a table on stdout, JSON in bench-results/relay-<timestamp>.json and bench-results/latest.json;
the wide-area comparison in bench-results/wan-<timestamp>.json, wan-latest.json and an SVG plot
(copied to docs/turnaround.svg).`;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} wants a whole number >= 1, not "${text}"`);
  return n;
}

function positiveNumber(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a number > 0, not "${text}"`);
  return n;
}

/** Parses argv; returns undefined when only help was asked for. */
export function parseConfig(argv: string[]): BenchConfig | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      repeats: { type: 'string' },
      mib: { type: 'string' },
      'bulk-files': { type: 'string' },
      'bulk-delay-ms': { type: 'string' },
      pipeline: { type: 'boolean' },
      'no-pipeline': { type: 'boolean' },
      'pipeline-records': { type: 'string' },
      'pipeline-ms': { type: 'string' },
      'no-mount': { type: 'boolean' },
      'mount-mib': { type: 'string' },
      'no-wan': { type: 'boolean' },
      'wan-rate': { type: 'string' },
      'wan-burst': { type: 'string' },
      'wan-cut': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  const quick = values.quick ?? false;
  if (values.pipeline && values['no-pipeline']) throw new Error('--pipeline and --no-pipeline contradict each other');
  return {
    quick,
    repeats: positiveInt('repeats', values.repeats, quick ? 1 : 3),
    mib: positiveInt('mib', values.mib, quick ? 32 : 256),
    bwlimit: '10MB',
    bulkFiles: positiveInt('bulk-files', values['bulk-files'], 1000),
    mount: !values['no-mount'],
    mountMib: positiveInt('mount-mib', values['mount-mib'], quick ? 128 : 1024),
    bulkFileBytes: 4096,
    bulkDelayMs: positiveInt('bulk-delay-ms', values['bulk-delay-ms'], 2),
    pipeline: !values['no-pipeline'],
    pipelineRecords: positiveInt('pipeline-records', values['pipeline-records'], quick ? 60 : 200),
    pipelineMsPerRecord: positiveInt('pipeline-ms', values['pipeline-ms'], 20),
    wan: !values['no-wan'],
    wanRate: positiveNumber('wan-rate', values['wan-rate'], 10),
    wanBurstMib: values['wan-burst'] !== undefined ? values['wan-burst'].split(',').map((t) => positiveInt('wan-burst', t.trim(), 1)) : quick ? [10, 50] : [10, 100, 1000],
    wanCutSeconds: positiveInt('wan-cut', values['wan-cut'], quick ? 8 : 30),
  };
}

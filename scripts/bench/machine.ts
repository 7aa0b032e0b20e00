import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What ran the benchmark: the machine, the runtime and the code. */

export interface MachineInfo {
  cpuModel: string;
  cpuCount: number;
  totalMemoryBytes: number;
  node: string;
  kernel: string;
  platform: string;
  arch: string;
  /** 1, 5 and 15 minute load averages at the start and the end of the run: a busy machine gives noisy figures. */
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
}

export interface CodeInfo {
  package: string;
  version: string;
  /** git commit of the work tree, and whether it had uncommitted changes; null outside git. */
  commit: string | null;
  dirty: boolean | null;
}

export function machineInfo(loadAverageAtStart: number[]): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryBytes: os.totalmem(),
    node: process.version,
    kernel: os.release(),
    platform: os.platform(),
    arch: os.arch(),
    loadAverageAtStart,
    loadAverageAtEnd: os.loadavg(),
  };
}

export function codeInfo(root: string): CodeInfo {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string; version: string };
  let commit: string | null = null;
  let dirty: boolean | null = null;
  try {
    const git = (args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    commit = git(['rev-parse', 'HEAD']);
    dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
  } catch {
    // not a git checkout, or no git: leave unknown
  }
  return { package: pkg.name, version: pkg.version, commit, dirty };
}

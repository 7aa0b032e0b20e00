import { Resources } from '../resources.js';
import { RunResult } from './exec.js';

/**
 * One way a program's output reaches the remote host. The program writes into
 * `writeDir` (a mount, or local disk for staging); the files arrive in `destDir`
 * on the destination host. The namespace shares this host's file system, so the
 * harness watches `destDir` directly; only the network is separate.
 */
export interface Approach {
  /** Short key in the JSON: sshfs, rclone, staging, kangaroo. */
  key: ApproachKey;
  /** What a reader of the table sees. */
  label: string;
  /** Options that matter for the figures (written next to them in the report). */
  settings: string;
  writeDir: string;
  destDir: string;
  /**
   * What has to happen after the program exited before the files leave this
   * host (staging's copy); undefined for the approaches that move data as or
   * after it is written, by themselves.
   */
  afterProgram?: (runDir: string) => Promise<RunResult>;
}

export type ApproachKey = 'sshfs' | 'rclone' | 'staging' | 'kangaroo';
export const APPROACH_KEYS: ApproachKey[] = ['sshfs', 'rclone', 'staging', 'kangaroo'];

/** The set of approaches over one link, each with its resources (mounts, relays). */
export interface ApproachSet {
  approaches: Approach[];
  res: Resources;
}

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { ErrorClass } from '../errors.js';

/**
 * The relay's persistent record of every failure (Phoenix): what failed, its
 * class, what the relay did about it, and how it ended. One JSON object per
 * line, appended, kept across restarts, so a user or a scheduler learns what
 * happened without reading daemon output (`kangaroo log`, `kangaroo status`).
 */

export interface FailureRecord {
  at: string;
  /** What kind of failure: delivery, hang, integrity, spool, access. */
  kind: string;
  /** Where: a next hop, a file (kangaroo://host/path), a client address. */
  target: string;
  code: string;
  class: ErrorClass;
  message: string;
  /** What the relay did: retry, blocked, resent, refused, skipped. */
  action: string;
  /** How it ended, when known (later records may say "recovered"). */
  outcome?: string;
}

export class FailureLog {
  private counts = new Map<string, number>();
  private recent: FailureRecord[] = [];
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  /** Loads the counts and recent records of earlier runs. */
  async load(): Promise<void> {
    let text = '';
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        this.remember(JSON.parse(line) as FailureRecord);
      } catch {
        /* a torn last line from a crash */
      }
    }
  }

  private remember(r: FailureRecord): void {
    const key = `${r.kind}/${r.class}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.recent.push(r);
    if (this.recent.length > 200) this.recent.shift();
  }

  record(r: Omit<FailureRecord, 'at'>): void {
    const full: FailureRecord = { at: new Date().toISOString(), ...r };
    this.remember(full);
    const line = JSON.stringify(full) + '\n';
    this.writing = this.writing.then(() => fsp.appendFile(this.file, line)).catch(() => undefined);
  }

  /** The newest records (up to `limit`), oldest first. */
  async list(limit = 1000): Promise<FailureRecord[]> {
    await this.writing;
    if (!fs.existsSync(this.file)) return [];
    const lines = (await fsp.readFile(this.file, 'utf8')).split('\n').filter(Boolean);
    const out: FailureRecord[] = [];
    for (const l of lines.slice(-limit)) {
      try {
        out.push(JSON.parse(l) as FailureRecord);
      } catch {
        /* torn line */
      }
    }
    return out;
  }

  summary(): { total: number; byKind: Record<string, number>; last: FailureRecord | null } {
    let total = 0;
    for (const n of this.counts.values()) total += n;
    return { total, byKind: Object.fromEntries(this.counts), last: this.recent[this.recent.length - 1] ?? null };
  }

  async flush(): Promise<void> {
    await this.writing;
  }
}

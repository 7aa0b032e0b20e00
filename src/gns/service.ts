import fsp from 'node:fs/promises';
import { Logger } from '../util/log.js';
import { GnsEntry, parseGns } from './format.js';

/**
 * The name service as the mount sees it: looks a path up in the user's file,
 * re-reading the file whenever it changed, so the next open of a name follows
 * an edit with no remount. A missing file means no mappings; malformed lines
 * are logged once per change, with their line numbers.
 */
export class NameService {
  private entries: GnsEntry[] = [];
  private stamp = '';

  constructor(
    readonly file: string | undefined,
    private readonly log: Logger,
  ) {}

  private async refresh(): Promise<void> {
    if (!this.file) return;
    let stamp: string;
    try {
      const st = await fsp.stat(this.file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      stamp = 'missing';
    }
    if (stamp === this.stamp) return;
    this.stamp = stamp;
    if (stamp === 'missing') {
      this.entries = [];
      return;
    }
    const text = await fsp.readFile(this.file, 'utf8').catch(() => '');
    const parsed = parseGns(text);
    for (const p of parsed.problems) this.log.warn(`name service ${this.file} line ${p.line}: ${p.message}`);
    this.entries = parsed.entries;
  }

  /** The mapping for a path under the mount: an exact entry, else the longest directory prefix. */
  async lookup(path: string): Promise<{ entry: GnsEntry; rest: string } | undefined> {
    await this.refresh();
    let best: { entry: GnsEntry; rest: string } | undefined;
    for (const e of this.entries) {
      if (!e.prefix && e.name === path) best = { entry: e, rest: '' };
    }
    if (best) return best;
    for (const e of this.entries) {
      if (!e.prefix) continue;
      if (path === e.name || path.startsWith(e.name + '/')) {
        if (!best || e.name.length >= best.entry.name.length) best = { entry: e, rest: path.slice(e.name.length) };
      }
    }
    return best;
  }

  /** True when some mapped name lies below `dir`: the directory exists on the mount even if nowhere else. */
  async hasEntriesUnder(dir: string): Promise<boolean> {
    await this.refresh();
    const prefix = dir === '/' ? '/' : dir + '/';
    return this.entries.some((e) => e.name.startsWith(prefix));
  }

  /** Names mapped directly inside a directory (so readdir can show them). */
  async namesIn(dir: string): Promise<GnsEntry[]> {
    await this.refresh();
    const prefix = dir === '/' ? '/' : dir + '/';
    const names = new Map<string, GnsEntry>();
    for (const e of this.entries) {
      if (!e.name.startsWith(prefix)) continue;
      // a deeper name shows its first directory here
      const first = e.name.slice(prefix.length).split('/')[0]!;
      names.set(first, e.name.slice(prefix.length).includes('/') ? { ...e, name: prefix + first, prefix: true } : e);
    }
    return [...names.values()];
  }
}

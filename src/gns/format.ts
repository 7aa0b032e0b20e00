import { normalizePath, parseKangarooUrl, RemoteFile } from '../address.js';
import { KangarooError } from '../errors.js';

/**
 * The name service file: one entry a line, `NAME MODE TARGET`, `#` starts a
 * comment. NAME is a path under the mount (a trailing `/` maps a whole directory);
 * a field with spaces is written in double quotes (\" and \\ escape inside).
 *
 *   /results/out.dat   remote  kangaroo://archive.example/run7/out.dat
 *   /scratch/          local   /tmp/scratch
 *   /pipe/stage1.out   buffer  buffer://hostB:9094/stage1
 *
 * A malformed line is reported with its number and skipped; the rest still works.
 */

export type Mode = 'local' | 'remote' | 'buffer';

export interface GnsEntry {
  name: string;
  /** True when NAME ended in `/`: everything below it follows the mapping. */
  prefix: boolean;
  mode: Mode;
  target: string;
  line: number;
  remote?: RemoteFile;
  local?: string;
  buffer?: { host: string; name: string };
}

export interface GnsProblem {
  line: number;
  message: string;
}

export interface ParsedGns {
  entries: GnsEntry[];
  problems: GnsProblem[];
}

/** Splits a line into fields, honouring double quotes; returns undefined on an unclosed quote. */
export function splitFields(line: string): string[] | undefined {
  const fields: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === '#') break;
    let field = '';
    if (line[i] === '"') {
      i++;
      let closed = false;
      while (i < line.length) {
        const c = line[i]!;
        if (c === '\\' && i + 1 < line.length) {
          field += line[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          closed = true;
          break;
        } else {
          field += c;
          i++;
        }
      }
      if (!closed) return undefined;
    } else {
      while (i < line.length && !/\s/.test(line[i]!)) field += line[i++];
    }
    fields.push(field);
  }
  return fields;
}

export function quoteField(s: string): string {
  return /[\s"#\\]/.test(s) || s === '' ? `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : s;
}

/** Parses one entry; throws a KangarooError saying what is wrong. */
export function parseEntry(fields: string[], line: number): GnsEntry {
  if (fields.length !== 3) throw new KangarooError('BAD_ARGUMENT', `expected NAME MODE TARGET, found ${fields.length} field(s)`);
  const [rawName, rawMode, target] = fields as [string, string, string];
  const prefix = rawName.endsWith('/') && rawName.length > 1;
  const name = normalizePath(rawName);
  if (name === '/') throw new KangarooError('BAD_ARGUMENT', 'NAME cannot be the mount root');
  if (name === '/kangaroo' || name.startsWith('/kangaroo/')) {
    throw new KangarooError('BAD_ARGUMENT', `NAME ${name} is inside /kangaroo, which always names remote files directly`);
  }
  const mode = rawMode.toLowerCase();
  const entry: GnsEntry = { name, prefix, mode: mode as Mode, target, line };
  switch (mode) {
    case 'local':
      if (!target.startsWith('/')) throw new KangarooError('BAD_ARGUMENT', `local TARGET must be an absolute path, not "${target}"`);
      entry.local = target;
      return entry;
    case 'remote':
      entry.remote = parseKangarooUrl(target);
      return entry;
    case 'buffer': {
      const b = parseKangarooUrl(target, 'buffer');
      if (b.path === '/') throw new KangarooError('BAD_ARGUMENT', `buffer TARGET needs a buffer name: buffer://HOST/NAME`);
      entry.buffer = { host: b.host, name: b.path.slice(1) };
      return entry;
    }
    default:
      throw new KangarooError('BAD_ARGUMENT', `unknown MODE "${rawMode}" (use local, remote or buffer)`);
  }
}

export function parseGns(text: string): ParsedGns {
  const entries: GnsEntry[] = [];
  const problems: GnsProblem[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const fields = splitFields(raw);
    if (!fields) {
      problems.push({ line, message: 'unclosed double quote' });
      return;
    }
    if (fields.length === 0) return;
    try {
      const e = parseEntry(fields, line);
      const key = e.name + (e.prefix ? '/' : '');
      const earlier = seen.get(key);
      if (earlier !== undefined) problems.push({ line, message: `${e.name} is also mapped on line ${earlier}; the later line wins` });
      seen.set(key, line);
      entries.push(e);
    } catch (err) {
      problems.push({ line, message: (err as Error).message });
    }
  });
  return { entries, problems };
}

export function formatEntry(e: { name: string; prefix?: boolean; mode: string; target: string }): string {
  const name = e.prefix && !e.name.endsWith('/') ? e.name + '/' : e.name;
  return `${quoteField(name)} ${e.mode} ${quoteField(e.target)}`;
}

import fsp from 'node:fs/promises';
import path from 'node:path';
import { splitFields, formatEntry, parseEntry, parseGns, GnsEntry } from './format.js';
import { normalizePath } from '../address.js';

/**
 * Edits a name service file from scripts: set, rm and ls. Each edit rewrites
 * the file atomically (write a temporary file, fsync, rename), keeping comments
 * and every other line as they were, so a mount never reads half a file.
 */

async function readLines(file: string): Promise<string[]> {
  try {
    const text = await fsp.readFile(file, 'utf8');
    const lines = text.split(/\r?\n/);
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function writeAtomically(file: string, lines: string[]): Promise<void> {
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const h = await fsp.open(tmp, 'w');
  try {
    await h.writeFile(lines.map((l) => l + '\n').join(''));
    await h.sync();
  } finally {
    await h.close();
  }
  await fsp.rename(tmp, file);
}

function nameOfLine(line: string): string | undefined {
  const f = splitFields(line);
  if (!f || f.length === 0) return undefined;
  try {
    return normalizePath(f[0]!) + (f[0]!.endsWith('/') && f[0]!.length > 1 ? '/' : '');
  } catch {
    return undefined;
  }
}

/** Maps NAME (validated first), replacing any earlier mapping of it. */
export async function gnsSet(file: string, name: string, mode: string, target: string): Promise<GnsEntry> {
  const entry = parseEntry([name, mode, target], 0);
  const key = entry.name + (entry.prefix ? '/' : '');
  const lines = await readLines(file);
  const line = formatEntry(entry);
  const at = lines.findIndex((l) => nameOfLine(l) === key);
  if (at >= 0) {
    lines[at] = line;
    for (let i = lines.length - 1; i > at; i--) if (nameOfLine(lines[i]!) === key) lines.splice(i, 1);
  } else {
    lines.push(line);
  }
  await writeAtomically(file, lines);
  return entry;
}

/** Removes NAME's mapping; returns false when it had none. */
export async function gnsRemove(file: string, name: string): Promise<boolean> {
  const key = normalizePath(name) + (name.endsWith('/') && name.length > 1 ? '/' : '');
  const lines = await readLines(file);
  const kept = lines.filter((l) => nameOfLine(l) !== key);
  if (kept.length === lines.length) return false;
  await writeAtomically(file, kept);
  return true;
}

export async function gnsList(file: string): Promise<ReturnType<typeof parseGns>> {
  return parseGns((await readLines(file)).join('\n'));
}

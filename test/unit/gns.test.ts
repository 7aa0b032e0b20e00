import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { gnsList, gnsRemove, gnsSet } from '../../src/gns/editor.js';
import { formatEntry, parseGns, splitFields } from '../../src/gns/format.js';
import { NameService } from '../../src/gns/service.js';
import { silentLogger } from '../../src/util/log.js';

function tmpFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kangaroo-gns-'));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'names.gns');
}

describe('name service file format', () => {
  /** The three modes parse into their targets; comments and blank lines are ignored. */
  it('parses local, remote and buffer entries', () => {
    const { entries, problems } = parseGns(
      ['# a comment', '', '/out/a.dat  remote  kangaroo://Archive.example/run/a.dat  # trailing comment', '/scratch/ local /tmp/s', '/pipe buffer buffer://hostb:7000/stage1'].join('\n'),
    );
    expect(problems).toEqual([]);
    expect(entries.map((e) => [e.name, e.mode, e.prefix])).toEqual([
      ['/out/a.dat', 'remote', false],
      ['/scratch', 'local', true],
      ['/pipe', 'buffer', false],
    ]);
    expect(entries[0]!.remote).toEqual({ host: 'archive.example:9094', path: '/run/a.dat' });
    expect(entries[2]!.buffer).toEqual({ host: 'hostb:7000', name: 'stage1' });
  });

  /** Every malformed line is reported with its number; the good ones still count. */
  it('reports malformed lines by number and keeps the rest', () => {
    const text = ['/ok local /tmp/ok', '/two fields', '/bad weird /x', '/rel local relative/path', '"unclosed local /x', '/k remote http://x/y', '/kangaroo/h/x local /tmp/x', '/ok2 remote kangaroo://h/p'].join('\n');
    const { entries, problems } = parseGns(text);
    expect(entries.map((e) => e.name)).toEqual(['/ok', '/ok2']);
    expect(problems.map((p) => p.line)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(problems[1]!.message).toMatch(/unknown MODE/);
    expect(problems[2]!.message).toMatch(/absolute/);
    expect(problems[3]!.message).toMatch(/quote/);
  });

  /** Names with spaces and quotes survive a round trip through the file format. */
  it('quotes fields with spaces, quotes and backslashes', () => {
    const line = formatEntry({ name: '/my dir/ü "x".txt', mode: 'local', target: '/tmp/a b\\c' });
    expect(splitFields(line)).toEqual(['/my dir/ü "x".txt', 'local', '/tmp/a b\\c']);
    expect(parseGns(line).entries[0]!.local).toBe('/tmp/a b\\c');
  });
});

describe('name service editing and lookup', () => {
  /** set replaces, rm removes, comments and unrelated lines stay; lookups follow edits at once. */
  it('edits atomically and the next lookup follows', async () => {
    const file = tmpFile();
    fs.writeFileSync(file, '# keep me\n/a local /tmp/a\n');
    const ns = new NameService(file, silentLogger);
    expect((await ns.lookup('/a'))?.entry.mode).toBe('local');
    await gnsSet(file, '/a', 'remote', 'kangaroo://h:1/a');
    await gnsSet(file, '/d/', 'local', '/tmp/d');
    expect(fs.readFileSync(file, 'utf8')).toBe('# keep me\n/a remote kangaroo://h:1/a\n/d/ local /tmp/d\n');
    expect((await ns.lookup('/a'))?.entry.mode).toBe('remote');
    const under = await ns.lookup('/d/x/y.txt');
    expect(under?.entry.local).toBe('/tmp/d');
    expect(under?.rest).toBe('/x/y.txt');
    expect(await gnsRemove(file, '/a')).toBe(true);
    expect(await gnsRemove(file, '/a')).toBe(false);
    expect(await ns.lookup('/a')).toBeUndefined();
    expect((await gnsList(file)).entries.length).toBe(1);
    await expect(gnsSet(file, '/x', 'remote', 'not-a-url')).rejects.toThrow(/kangaroo:\/\//);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['names.gns']); // no temporary files left
  });
});

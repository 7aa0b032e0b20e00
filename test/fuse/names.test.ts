import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, sh, startMount, unmountAndCheck } from '../helpers/mount-process.js';
import { CLI, closedPort, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * The name service through a real mount: a user edits one line of the gns file
 * (with `kangaroo gns set` or any editor) and the next open of that name follows
 * the new mapping, with no remount. Programs run in child processes.
 */

const kangaroo = (args: string[], env?: NodeJS.ProcessEnv) => run(process.execPath, [CLI, ...args], { env });


describe('name service through the mount', () => {
  it('the next open follows an edited mapping: local → remote (gns set) → local (plain rewrite) → remote', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const gns = path.join(dir, 'names.gns');
    const localFile = path.join(dir, 'local-out.dat');
    fs.writeFileSync(gns, `# job outputs\n/out.dat local ${localFile}\n`);
    const mount = await startMount(dir, 'mnt', { relay: hop.address, gns });
    const name = path.join(mount.mountpoint, 'out.dat');
    const exported = (p: string) => path.join(dest.exportDir!, p);

    // local
    let w = await sh(`printf 'one\\n' > "${name}"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    expect(fs.readFileSync(localFile, 'utf8')).toBe('one\n');
    let r = await sh(`cat "${name}"`);
    expect(r.stdout).toBe('one\n');

    // → remote, edited with the CLI (an atomic rename of the file)
    const remoteUrl = `kangaroo://${dest.address}/names/out.dat`;
    const set = await kangaroo(['gns', 'set', '/out.dat', 'remote', remoteUrl, '-f', gns]);
    expect(set.code, set.stderr).toBe(0);
    w = await sh(`printf 'two, remote\\n' > "${name}"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    r = await sh(`cat "${name}"`);
    expect(r.stdout, 'read-your-writes through the new mapping').toBe('two, remote\n');
    const push = await kangaroo(['push', '--relay', hop.address, remoteUrl]);
    expect(push.code, push.stderr + hop.log()).toBe(0);
    expect(fs.readFileSync(exported('names/out.dat'), 'utf8')).toBe('two, remote\n');
    expect(fs.readFileSync(localFile, 'utf8'), 'the local file is no longer written').toBe('one\n');

    // → local again, by rewriting the file in place (same inode) as an editor might
    fs.writeFileSync(gns, `# job outputs\n/out.dat local ${localFile}\n`);
    w = await sh(`printf 'three, local again\\n' > "${name}"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    expect(fs.readFileSync(localFile, 'utf8')).toBe('three, local again\n');
    r = await sh(`cat "${name}"`);
    expect(r.stdout).toBe('three, local again\n');

    // → remote, another path, again by a plain rewrite; delivered by umount --push
    fs.writeFileSync(gns, `# job outputs\n/out.dat remote kangaroo://${dest.address}/names/other.dat\n`);
    w = await sh(`printf 'four\\n' > "${name}" && printf 'four and a half\\n' >> "${name}"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(fs.readFileSync(exported('names/other.dat'), 'utf8')).toBe('four\nfour and a half\n');
    expect(fs.readFileSync(exported('names/out.dat'), 'utf8')).toBe('two, remote\n');
    expect(fs.readFileSync(localFile, 'utf8')).toBe('three, local again\n');
  });

  it('malformed lines are reported with their numbers (mount log and gns check); the good lines still work', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const gns = path.join(dir, 'bad.gns');
    const good1 = path.join(dir, 'good1.txt');
    fs.writeFileSync(
      gns,
      [
        '# a comment, then good and bad lines',
        `/good1.txt local ${good1}`,
        '/bad-fields.txt local',
        '/bad-mode.txt sideways /tmp/x',
        '/bad-relative.txt local relative/path.txt',
        '"/bad quote.txt local /tmp/q',
        '',
        `"/good 2.txt" remote kangaroo://${dest.address}/g/good2.txt`,
      ].join('\n') + '\n',
    );
    const bad = [3, 4, 5, 6];

    const check = await kangaroo(['gns', 'check', gns]);
    expect(check.code).not.toBe(0);
    for (const line of bad) expect(check.stderr, check.stderr).toContain(`${gns}:${line}:`);
    for (const line of [1, 2, 7, 8]) expect(check.stderr).not.toContain(`${gns}:${line}:`);
    expect(check.stderr).toMatch(/3:.*field/);
    expect(check.stderr).toMatch(/4:.*sideways/);
    expect(check.stderr).toMatch(/5:.*absolute/);
    expect(check.stderr).toMatch(/6:.*quote/);

    const mount = await startMount(dir, 'mnt', { relay: hop.address, gns });
    const w = await sh(`cd "${mount.mountpoint}" && printf 'good one\\n' > good1.txt && printf 'good two\\n' > "good 2.txt"`);
    expect(w.code, w.stderr + mount.log()).toBe(0);
    expect(fs.readFileSync(good1, 'utf8')).toBe('good one\n');
    await waitFor(() => bad.every((line) => mount.log().includes(`${gns} line ${line}:`)), 10_000, 'the mount to log every bad line');
    for (const line of [1, 2, 7, 8]) expect(mount.log()).not.toContain(`${gns} line ${line}:`);
    // the bad names are plain scratch names, not mappings
    const ls = await sh(`ls -1 "${mount.mountpoint}"`);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split('\n')).toEqual(expect.arrayContaining(['good1.txt', 'good 2.txt', 'kangaroo']));

    const u = await unmountAndCheck(mount, true);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'g/good2.txt'), 'utf8')).toBe('good two\n');
  });

  it('a mapping to an unreachable host: write and close succeed, the data waits in the spool, the mount stays responsive', async () => {
    const dir = await tempDir();
    const hop = await startRelay(dir, 'hop');
    const port = await closedPort();
    const host = `127.0.0.1:${port}`;
    const gns = path.join(dir, 'names.gns');
    fs.writeFileSync(gns, `/lost.dat remote kangaroo://${host}/x\n`);
    const mount = await startMount(dir, 'mnt', { relay: hop.address, gns });
    const data = crypto.randomBytes(200_000);
    const input = path.join(dir, 'input.bin');
    fs.writeFileSync(input, data);

    const w = await sh(`cp "${input}" "${mount.mountpoint}/lost.dat"`, { timeoutMs: 30_000 });
    expect(w.code, w.stderr + mount.log()).toBe(0);

    const st = await kangaroo(['status', '--relay', hop.address, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const status = JSON.parse(st.stdout) as { files: { host: string; path: string; pendingBytes: number }[] };
    const f = status.files.find((x) => x.host === host && x.path === '/x');
    expect(f, st.stdout).toBeDefined();
    expect(f!.pendingBytes).toBeGreaterThan(0);

    const ls = await sh(`ls -la "${mount.mountpoint}" && echo scratch > "${mount.mountpoint}/note.txt" && cat "${mount.mountpoint}/note.txt"`, { timeoutMs: 10_000 });
    expect(ls.code, ls.stderr + mount.log()).toBe(0);
    expect(ls.stdout).toContain('lost.dat');
    expect(ls.stdout).toContain('scratch');
    // read-your-writes comes from the first hop's spool, with the destination down
    const back = await sh(`sha256sum < "${mount.mountpoint}/lost.dat"`, { timeoutMs: 20_000 });
    expect(back.code, back.stderr + mount.log()).toBe(0);
    expect(back.stdout.split(' ')[0]).toBe(crypto.createHash('sha256').update(data).digest('hex'));

    // no --push: the unmount commits and leaves delivery to the relay
    const u = await unmountAndCheck(mount, false);
    expect(u.code, u.stderr + mount.log()).toBe(0);
    expect(u.stderr).toContain('still on the way');
  });

  it('gns set, rm and ls round trip; every edit is an atomic rewrite that keeps comments and blank lines', async () => {
    const dir = await tempDir();
    const gns = path.join(dir, 'edit.gns');
    const original = ['# outputs of run 7', '', '/a.dat local /data/a.dat   # trailing comment', '# keep me', '/b.dat remote kangaroo://archive.example/run7/b.dat', ''].join('\n');
    fs.writeFileSync(gns, original);

    const ls0 = await kangaroo(['gns', 'ls', '-f', gns]);
    expect(ls0.code, ls0.stderr).toBe(0);
    // targets are kept as the user wrote them
    expect(ls0.stdout).toBe('/a.dat local /data/a.dat\n/b.dat remote kangaroo://archive.example/run7/b.dat\n');

    const inoBefore = fs.statSync(gns).ino;
    let r = await kangaroo(['gns', 'set', '/a.dat', 'remote', 'kangaroo://archive.example/run7/a.dat', '-f', gns]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.statSync(gns).ino, 'rewritten by rename, not in place').not.toBe(inoBefore);
    r = await kangaroo(['gns', 'set', '/with space/c.dat', 'local', '/data/c "quoted".dat', '-f', gns]);
    expect(r.code, r.stderr).toBe(0);
    r = await kangaroo(['gns', 'set', '/results/', 'remote', 'kangaroo://archive.example:9000/results', '-f', gns]);
    expect(r.code, r.stderr).toBe(0);
    const bad = await kangaroo(['gns', 'set', '/d.dat', 'sideways', '/x', '-f', gns]);
    expect(bad.code, 'a bad mapping is refused').not.toBe(0);
    expect(bad.stderr).toContain('sideways');

    let text = fs.readFileSync(gns, 'utf8');
    expect(text.split('\n').slice(0, 5)).toEqual([
      '# outputs of run 7',
      '',
      '/a.dat remote kangaroo://archive.example/run7/a.dat',
      '# keep me',
      '/b.dat remote kangaroo://archive.example/run7/b.dat',
    ]);
    expect(text).not.toContain('sideways');
    expect(fs.readdirSync(dir).filter((n) => n.includes('.tmp')), 'no temporary file left behind').toEqual([]);

    const ls1 = await kangaroo(['gns', 'ls', '-f', gns]);
    expect(ls1.code, ls1.stderr).toBe(0);
    expect(ls1.stdout.trim().split('\n')).toEqual([
      '/a.dat remote kangaroo://archive.example/run7/a.dat',
      '/b.dat remote kangaroo://archive.example/run7/b.dat',
      '"/with space/c.dat" local "/data/c \\"quoted\\".dat"',
      '/results/ remote kangaroo://archive.example:9000/results',
    ]);
    const check = await kangaroo(['gns', 'check', gns]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toContain('4 entries, 0 problem(s)');

    r = await kangaroo(['gns', 'rm', '/b.dat', '-f', gns]);
    expect(r.code, r.stderr).toBe(0);
    r = await kangaroo(['gns', 'rm', '/with space/c.dat', '-f', gns]);
    expect(r.code, r.stderr).toBe(0);
    const missing = await kangaroo(['gns', 'rm', '/never-mapped', '-f', gns]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('NOT_FOUND');

    text = fs.readFileSync(gns, 'utf8');
    expect(text).toBe(
      ['# outputs of run 7', '', '/a.dat remote kangaroo://archive.example/run7/a.dat', '# keep me', '/results/ remote kangaroo://archive.example:9000/results', ''].join('\n'),
    );
    // the environment variable names the file when -f is not given
    const viaEnv = await kangaroo(['gns', 'ls'], { KANGAROO_GNS: gns });
    expect(viaEnv.stdout.trim().split('\n')).toEqual(['/a.dat remote kangaroo://archive.example/run7/a.dat', '/results/ remote kangaroo://archive.example:9000/results']);
  });
});

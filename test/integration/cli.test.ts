import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, startRelay, tempDir } from '../helpers/relay-process.js';


/** Runs the kangaroo command as a user would, returning its output and exit status. */
async function kangaroo(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: Buffer } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: stdout.toString('latin1'), stderr: stderr.toString() });
    });
    if (opts.input) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

describe('the kangaroo command line', () => {
  /** put, push, get, status and commit through a first-hop relay, as a user runs them. */
  it('puts, pushes and gets files through a relay', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const a = path.join(dir, 'a.bin');
    const b = path.join(dir, 'b.txt');
    fs.writeFileSync(a, crypto.randomBytes(3 * 1024 * 1024 + 17));
    fs.writeFileSync(b, 'hello, far away\n');
    const url = `kangaroo://${dest.address}/cli/`;
    const put = await kangaroo(['put', a, b, url, '--relay', hop.address]);
    expect(put.stderr).toContain('2 file(s)');
    expect(put.code).toBe(0);
    // the relay comes from KANGAROO_RELAY when --relay is not given
    const push = await kangaroo(['push', `${url}a.bin`, `${url}b.txt`], { env: { KANGAROO_RELAY: hop.address } });
    expect(push.code).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'cli/a.bin')).equals(fs.readFileSync(a))).toBe(true);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'cli/b.txt'), 'utf8')).toBe('hello, far away\n');
    const got = path.join(dir, 'got.bin');
    const get = await kangaroo(['get', `${url}a.bin`, got, '--relay', hop.address]);
    expect(get.code).toBe(0);
    expect(fs.readFileSync(got).equals(fs.readFileSync(a))).toBe(true);
    const toStdout = await kangaroo(['get', `${url}b.txt`, '-', '--relay', hop.address]);
    expect(toStdout.stdout).toBe('hello, far away\n');
    const status = await kangaroo(['status', '--json', '--relay', hop.address]);
    const s = JSON.parse(status.stdout);
    expect(s.name).toBe(hop.address);
    expect(s.spool.pendingOps).toBe(0);
    const human = await kangaroo(['status', '--relay', hop.address]);
    expect(human.stdout).toContain('nothing pending');
    expect((await kangaroo(['commit', '--relay', hop.address])).code).toBe(0);
  });

  /** Many files in one put travel read ahead and batched; sizes mixed, an empty one, a large one among them. */
  it('puts hundreds of files in one command, each byte-identical at the destination', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop');
    const src = path.join(dir, 'many');
    fs.mkdirSync(src);
    const names: string[] = [];
    for (let i = 0; i < 300; i++) {
      const name = path.join(src, `f${String(i).padStart(3, '0')}.dat`);
      const size = i === 150 ? 3 * 1024 * 1024 + 5 : i === 7 ? 0 : 1 + ((i * 7919) % 20000);
      fs.writeFileSync(name, crypto.randomBytes(size));
      names.push(name);
    }
    const url = `kangaroo://${dest.address}/many/`;
    const missing = await kangaroo(['put', names[0]!, path.join(src, 'no-such-file'), url, '--relay', hop.address]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/no-such-file/);
    const put = await kangaroo(['put', ...names, url, '--relay', hop.address, '--push']);
    expect(put.code, put.stderr).toBe(0);
    expect(put.stderr).toContain('300 file(s)');
    for (const n of names) {
      const got = fs.readFileSync(path.join(dest.exportDir!, 'many', path.basename(n)));
      expect(got.equals(fs.readFileSync(n)), path.basename(n)).toBe(true);
    }
  });

  /** put - reads standard input; the status view lists a file still on its way. */
  it('puts from stdin and shows undelivered files in status', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const hop = await startRelay(dir, 'hop', { bwlimit: '256KB' });
    const data = crypto.randomBytes(1024 * 1024);
    const url = `kangaroo://${dest.address}/stdin/data.bin`;
    const put = await kangaroo(['put', '-', url, '--relay', hop.address], { input: data });
    expect(put.code).toBe(0);
    const human = await kangaroo(['status', '--relay', hop.address]);
    expect(human.stdout).toContain('files not yet delivered');
    expect(human.stdout).toContain(url);
    const push = await kangaroo(['push', url, '--relay', hop.address]);
    expect(push.code).toBe(0);
    expect(fs.readFileSync(path.join(dest.exportDir!, 'stdin/data.bin')).equals(data)).toBe(true);
  });

  /** Mistakes get a clear message and a failing exit status. */
  it('explains errors clearly', async () => {
    const dir = await tempDir();
    const unreachable = await kangaroo(['commit', '--relay', '127.0.0.1:1']);
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stderr).toMatch(/UNREACHABLE: cannot reach relay 127\.0\.0\.1:1/);
    expect(unreachable.stderr).toContain('kangaroo relay');
    const badUrl = await kangaroo(['put', __filename, 'http://x/y', '--relay', '127.0.0.1:1']);
    expect(badUrl.stderr).toMatch(/BAD_ADDRESS/);
    const noCommand = await kangaroo([]);
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toContain('Name a command');
    // a usage error stops there (the command does not run anyway), and every error is said once
    const noSources = await kangaroo(['put', '--relay', '127.0.0.1:1']);
    expect(noSources.code).toBe(2);
    expect(noSources.stderr).toBe('kangaroo: Not enough non-option arguments: got 0, need at least 1\n(see kangaroo --help)\n');
    const typo = await kangaroo(['stauts']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('unknown command stauts. Did you mean status?');
    const missingSource = await kangaroo(['put', path.join(dir, 'nonexistent'), 'kangaroo://127.0.0.1:1/x', '--relay', '127.0.0.1:1']);
    expect(missingSource.code).toBe(1);
    expect(missingSource.stderr.match(/NOT_FOUND/g)).toHaveLength(1);
    const dest = await startRelay(dir, 'dest', { export: true });
    const escape = await kangaroo(['put', __filename, `kangaroo://${dest.address}/../../etc/x`, '--relay', dest.address]);
    expect(escape.code).not.toBe(0);
    expect(escape.stderr).toMatch(/PATH_ESCAPE/);
    const missing = await kangaroo(['get', `kangaroo://${dest.address}/nope`, '-', '--relay', dest.address]);
    expect(missing.stderr).toMatch(/NOT_FOUND/);
    const help = await kangaroo(['relay', '--help']);
    expect(help.stdout).toContain('--max-spool-bytes');
    expect(help.stdout).toContain('--route');
  });
});

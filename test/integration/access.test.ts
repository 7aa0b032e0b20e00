import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { CLI, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

const SECRET = 'correct horse battery staple 0123456789';

function kangaroo(args: string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

async function works(address: string, host: string, secret?: Buffer): Promise<void> {
  const c = await RelayClient.connect(address, { secret });
  onTestFinished(() => c.destroy());
  await c.put(host, '/ok.txt', 0, Buffer.from('fine'));
  await c.commit();
  expect((await c.get(host, '/ok.txt', 0, 100)).toString()).toBe('fine');
}

describe('access control', () => {
  /** Without the secret, or with a wrong one, a client is refused; with it, it works; others are unaffected. */
  it('asks for the shared secret by challenge and response', async () => {
    const dir = await tempDir();
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, SECRET + '\n');
    const dest = await startRelay(dir, 'dest', { export: true, extra: ['--secret-file', secretFile] });
    const good = Buffer.from(SECRET);
    const before = await RelayClient.connect(dest.address, { secret: good });
    onTestFinished(() => before.destroy());
    await expect(RelayClient.connect(dest.address)).rejects.toMatchObject({ code: 'AUTH', message: expect.stringMatching(/requires a shared secret/) });
    await expect(RelayClient.connect(dest.address, { secret: Buffer.from('wrong secret, long enough to pass') })).rejects.toMatchObject({
      code: 'AUTH',
      message: expect.stringMatching(/wrong shared secret/),
    });
    await works(dest.address, dest.address, good);
    await before.put(dest.address, '/before.txt', 0, Buffer.from('still here'));
    await before.commit();
    expect(dest.child.exitCode).toBeNull();
    // the CLI takes the secret from --secret-file or KANGAROO_SECRET_FILE
    const st = await kangaroo(['status', '--json', '--relay', dest.address, '--secret-file', secretFile]);
    expect(st.code, st.stderr).toBe(0);
    const refused = await kangaroo(['status', '--relay', dest.address]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/AUTH: .*secret/);
    // every refusal is on record
    const c = await RelayClient.connect(dest.address, { secret: good });
    onTestFinished(() => c.destroy());
    const log = (await c.failureLog()) as { kind: string; code: string }[];
    expect(log.filter((r) => r.kind === 'access' && r.code === 'AUTH').length).toBeGreaterThanOrEqual(2);
  });

  /** Relays prove the secret to their next hop; a first hop with the wrong secret keeps its data and says why. */
  it('authenticates relay to relay along a chain', async () => {
    const dir = await tempDir();
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, SECRET);
    const wrongFile = path.join(dir, 'wrong');
    fs.writeFileSync(wrongFile, 'this is not the secret you are looking for');
    const dest = await startRelay(dir, 'dest', { export: true, extra: ['--secret-file', secretFile] });
    const hop = await startRelay(dir, 'hop', { extra: ['--secret-file', secretFile] });
    const client = await RelayClient.connect(hop.address, { secret: Buffer.from(SECRET) });
    onTestFinished(() => client.destroy());
    await client.put(dest.address, '/chain.txt', 0, Buffer.from('through two relays'));
    await client.commit();
    await client.push(dest.address, '/chain.txt');
    expect(fs.readFileSync(path.join(dest.exportDir!, 'chain.txt'), 'utf8')).toBe('through two relays');

    const badHop = await startRelay(dir, 'badhop', { extra: ['--secret-file', wrongFile] });
    const c2 = await RelayClient.connect(badHop.address, { secret: Buffer.from('this is not the secret you are looking for') });
    onTestFinished(() => c2.destroy());
    await c2.truncate(dest.address, '/never.txt', 0);
    await c2.put(dest.address, '/never.txt', 0, Buffer.from('stays spooled'));
    await c2.commit(); // safely spooled, whatever happens downstream
    await waitFor(async () => {
      const s = (await c2.status()) as { movers: { lastError: { code: string } | null }[] };
      return s.movers[0]?.lastError?.code === 'AUTH';
    }, 20_000, 'the mover to report AUTH');
    expect(fs.existsSync(path.join(dest.exportDir!, 'never.txt'))).toBe(false);
    expect((await c2.get(dest.address, '/never.txt', 0, 100)).toString()).toBe('stays spooled');
  });

  /** --allow admits listed ranges only; a relay reachable from elsewhere refuses to start unprotected. */
  it('checks addresses and refuses an open listener', async () => {
    const dir = await tempDir();
    const fenced = await startRelay(dir, 'fenced', { export: true, extra: ['--allow', '10.9.9.0/24'] });
    await expect(RelayClient.connect(fenced.address)).rejects.toMatchObject({ code: expect.stringMatching(/AUTH|CONNECTION_LOST/) });
    const local = await startRelay(dir, 'local', { export: true, extra: ['--allow', '10.9.9.0/24', '--allow', '127.0.0.0/8'] });
    await works(local.address, local.address);
    const open = await kangaroo(['relay', '--listen', '0.0.0.0:0', '--spool', path.join(dir, 'open-spool')]);
    expect(open.code).not.toBe(0);
    expect(open.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 without access control: give --secret-file FILE/);
  });

  /** More connections than the limit: the extra one gets a clear error, the others keep working. */
  it('refuses connections beyond the limit', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true, extra: ['--max-connections', '2'] });
    const a = await RelayClient.connect(dest.address);
    const b = await RelayClient.connect(dest.address);
    onTestFinished(() => {
      a.destroy();
      b.destroy();
    });
    await expect(RelayClient.connect(dest.address)).rejects.toMatchObject({ code: expect.stringMatching(/LIMIT|CONNECTION_LOST/) });
    await a.put(dest.address, '/a', 0, Buffer.from('a'));
    await a.commit();
    b.destroy();
    await waitFor(async () => {
      try {
        const c = await RelayClient.connect(dest.address);
        c.destroy();
        return true;
      } catch {
        return false;
      }
    }, 10_000, 'a free connection slot');
  });
});

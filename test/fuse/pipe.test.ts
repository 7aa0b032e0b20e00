import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import type { RelayStatus } from '../../src/relay/status.js';
import { MountProcess, run, sh, startMount } from '../helpers/mount-process.js';
import { CLI, RelayProcess, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * Pipe mode (GriddLeS grid buffers) through real mounts: one gns line maps
 * /pipe/data to a buffer on relay A; a writer on mount m1 (attached to A) and
 * readers on mount m2 (attached to a second relay B, which forwards to A) run
 * at the same time, unmodified. Readers block until bytes exist and see end of
 * file when the writer closes. Every program runs in a child process.
 */

const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');
const kangaroo = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type BufferInfo = RelayStatus['buffers'][number];

async function status(relay: RelayProcess): Promise<RelayStatus> {
  const r = await kangaroo(['status', '--json', '--relay', relay.address]);
  expect(r.code, `kangaroo status: ${r.stderr}\n--- relay log (tail) ---\n${relay.log().slice(-3000)}`).toBe(0);
  return JSON.parse(r.stdout) as RelayStatus;
}

async function bufferInfo(relay: RelayProcess, name: string): Promise<BufferInfo | undefined> {
  return (await status(relay)).buffers.find((b) => b.name === name);
}

/** A process's peak resident set (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

function isMounted(mountpoint: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mountpoint);
}

/** A program's exit, with the wall-clock time (ms since the epoch) it was seen. */
async function timed<T>(p: Promise<T>): Promise<T & { endedAt: number }> {
  const r = await p;
  return { ...r, endedAt: Date.now() };
}

interface Rig {
  a: RelayProcess;
  b: RelayProcess;
  gns: string;
  m1: MountProcess;
  m2: MountProcess;
  /** /pipe/data on m1 (the writer's side) and on m2 (the readers' side). */
  w: string;
  r: string;
}

const BUFFER = 'stage1';

/** Relay A hosts the buffer; relay B is a second relay; m1 uses A, m2 uses B; both read the same gns file. */
async function pipeRig(dir: string, hostFlags: string[] = []): Promise<Rig> {
  const a = await startRelay(dir, 'a', { extra: hostFlags });
  const b = await startRelay(dir, 'b');
  const gns = path.join(dir, 'names.gns');
  fs.writeFileSync(gns, `# stage 1 feeds stage 2\n/pipe/data buffer buffer://${a.address}/${BUFFER}\n`);
  const m1 = await startMount(dir, 'm1', { relay: a.address, gns });
  const m2 = await startMount(dir, 'm2', { relay: b.address, gns });
  return { a, b, gns, m1, m2, w: path.join(m1.mountpoint, 'pipe/data'), r: path.join(m2.mountpoint, 'pipe/data') };
}

/**
 * Reads PATH in chunks of up to CHUNK bytes (one read(2) each, as a program
 * reading a pipe), copies them to OUT, sleeps DELAY seconds after each, and
 * prints when the first byte came, when it ended, how many bytes and their sha256.
 */
const READER_PY = String.raw`
import hashlib, json, os, sys, time
src, out, chunk, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
h = hashlib.sha256()
first = None
n = 0
fd = os.open(src, os.O_RDONLY)
with open(out, 'wb') as o:
    while True:
        b = os.read(fd, chunk)
        if not b:
            break
        if first is None:
            first = time.time()
        n += len(b)
        h.update(b)
        o.write(b)
        if delay:
            time.sleep(delay)
os.close(fd)
print(json.dumps({'first': None if first is None else first * 1000, 'end': time.time() * 1000, 'bytes': n, 'sha256': h.hexdigest()}))
`;

interface ReaderReport {
  first: number | null;
  end: number;
  bytes: number;
  sha256: string;
}

function pyReader(dir: string, src: string, out: string, chunk = 65536, delay = 0) {
  const script = path.join(dir, 'reader.py');
  if (!fs.existsSync(script)) fs.writeFileSync(script, READER_PY);
  return run('python3', [script, src, out, String(chunk), String(delay)], { timeoutMs: 90_000 });
}

function report(r: { code: number; stdout: string; stderr: string }): ReaderReport {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ReaderReport;
}

/** 30 lines, one every 100 ms; deterministic text so the pipe and file runs can be compared. */
const WRITER = (local: string, target: string) =>
  `for i in $(seq 1 30); do echo "line $i of 30: the quick brown fox jumps over the lazy dog"; sleep 0.1; done | tee "${local}" > "${target}"`;

describe('pipe mode: a writer and readers on two mounts overlap', () => {
  it('readers on another relay get each line as it is written, finish within 1 s of the writer, byte for byte', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir);
    const local = path.join(dir, 'local.txt');

    // readers first: a buffer's bytes are freed once every reader has them, so all of them join before the writer
    const shaP = timed(sh(`sha256sum < "${rig.r}"`));
    const wcP = timed(sh(`wc -c < "${rig.r}"`));
    const pyP = timed(pyReader(dir, rig.r, path.join(dir, 'py-copy.txt')));
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.readers === 3, 20_000, 'three readers on the buffer');

    const writerStart = Date.now();
    const writerP = timed(sh(WRITER(local, rig.w)));
    let writerDone = false;
    void writerP.finally(() => (writerDone = true));
    // the relay's own view, sampled while the writer still has the buffer open
    let readWhileWriting = 0;
    while (!writerDone) {
      const b = await bufferInfo(rig.a, BUFFER);
      if (b?.writer === 'attached') readWhileWriting = Math.max(readWhileWriting, b.bytesRead);
      await sleep(250);
    }
    const writer = await writerP;
    expect(writer.code, writer.stderr + rig.m1.log()).toBe(0);
    const [sha, wc, py] = await Promise.all([shaP, wcP, pyP]);
    expect(sha.code, sha.stderr + rig.m2.log()).toBe(0);
    expect(wc.code, wc.stderr + rig.m2.log()).toBe(0);

    const expected = fs.readFileSync(local);
    expect(expected.length).toBeGreaterThan(30 * 50);
    expect(sha.stdout.split(/\s+/)[0], 'sha256sum on m2 matches the local copy').toBe(sha256(expected));
    expect(Number(wc.stdout.trim()), 'wc -c on m2').toBe(expected.length);
    const p = report(py);
    expect(p.sha256).toBe(sha256(expected));
    expect(fs.readFileSync(path.join(dir, 'py-copy.txt')).equals(expected)).toBe(true);

    // overlap: the reader had its first line long before the writer (3 s of writing) finished
    const writerMs = writer.endedAt - writerStart;
    expect(writerMs).toBeGreaterThan(2500);
    expect(p.first).not.toBeNull();
    expect(p.first! - writerStart, 'first byte at the reader, ms after the writer started').toBeLessThan(1500);
    expect(writer.endedAt - p.first!, 'ms the writer still ran after the first byte was read').toBeGreaterThan(1500);
    expect(readWhileWriting, 'bytesRead on the relay while the writer still ran').toBeGreaterThan(0);
    // and the readers end with the writer, not long after
    for (const [name, end] of [['sha256sum', sha.endedAt], ['wc -c', wc.endedAt], ['python reader', p.end]] as const) {
      expect(end - writer.endedAt, `${name} ended this many ms after the writer`).toBeLessThan(1000);
    }
    console.log(
      `pipe overlap: writer ${writerMs} ms; first byte at the reader ${Math.round(p.first! - writerStart)} ms after the writer started; ` +
        `readers ended ${sha.endedAt - writer.endedAt} / ${wc.endedAt - writer.endedAt} / ${Math.round(p.end - writer.endedAt)} ms after it`,
    );
  });

  it('the same programs as plain files after one gns edit (remote mapping, no remount) give the same bytes', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir);
    const dest = await startRelay(dir, 'dest', { export: true });

    // pipe run
    const pipeSha = timed(sh(`sha256sum < "${rig.r}"`));
    const pipeWc = timed(sh(`wc -c < "${rig.r}"`));
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.readers === 2, 20_000, 'two readers on the buffer');
    const t0 = Date.now();
    const w1 = await timed(sh(WRITER(path.join(dir, 'local-pipe.txt'), rig.w)));
    expect(w1.code, w1.stderr + rig.m1.log()).toBe(0);
    const [s1, c1] = await Promise.all([pipeSha, pipeWc]);
    expect(s1.code, s1.stderr + rig.m2.log()).toBe(0);
    const pipeMs = Math.max(s1.endedAt, c1.endedAt) - t0;

    // one line of the gns file changes; the mounts stay as they are
    const url = `kangaroo://${dest.address}/pipe/data`;
    const set = await kangaroo(['gns', 'set', '/pipe/data', 'remote', url, '-f', rig.gns]);
    expect(set.code, set.stderr).toBe(0);
    expect(fs.readFileSync(rig.gns, 'utf8')).toContain(`/pipe/data remote ${url}`);

    // file run: writer, then (once delivered) readers, one after the other
    const t1 = Date.now();
    const w2 = await sh(WRITER(path.join(dir, 'local-file.txt'), rig.w));
    expect(w2.code, w2.stderr + rig.m1.log()).toBe(0);
    // m2 reads through another relay: the file must have reached its destination first
    const push = await kangaroo(['push', '--relay', rig.a.address, url]);
    expect(push.code, push.stderr + rig.a.log()).toBe(0);
    const s2 = await sh(`sha256sum < "${rig.r}"`);
    const c2 = await sh(`wc -c < "${rig.r}"`);
    const fileMs = Date.now() - t1;
    expect(s2.code, s2.stderr + rig.m2.log()).toBe(0);
    expect(c2.code, c2.stderr + rig.m2.log()).toBe(0);

    expect(rig.m1.child.exitCode, 'm1 was never remounted').toBeNull();
    expect(rig.m2.child.exitCode, 'm2 was never remounted').toBeNull();
    const delivered = fs.readFileSync(path.join(dest.exportDir!, 'pipe/data'));
    expect(s2.stdout).toBe(s1.stdout);
    expect(c2.stdout).toBe(c1.stdout);
    expect(s1.stdout.split(/\s+/)[0]).toBe(sha256(delivered));
    expect(fs.readFileSync(path.join(dir, 'local-pipe.txt')).equals(delivered)).toBe(true);
    expect(await bufferInfo(rig.a, BUFFER), 'the buffer was dropped once written and read').toBeUndefined();
    console.log(`same programs: pipe run ${pipeMs} ms (overlapped), file run ${fileMs} ms (writer, push, readers)`);
  });

  it('a writer 10x the memory tier spills to disk, is held back by a slow reader, and stays byte-identical with bounded RSS', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir, ['--buffer-memory', '1MiB', '--buffer-budget', '4MiB']);
    const src = path.join(dir, 'input.bin');
    const size = 12 * 1024 * 1024;
    fs.writeFileSync(src, crypto.randomBytes(size));
    const expected = sha256(fs.readFileSync(src));

    // 64 KiB reads with a 10 ms nap: roughly 6 MB/s, far slower than dd
    const readerP = timed(pyReader(dir, rig.r, path.join(dir, 'copy.bin'), 65536, 0.01));
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.readers === 1, 20_000, 'the reader on the buffer');
    const t0 = Date.now();
    const writerP = timed(sh(`dd if="${src}" of="${rig.w}" bs=1M 2>&1`));
    let done = false;
    void Promise.all([readerP, writerP]).finally(() => (done = true));
    const samples: BufferInfo[] = [];
    while (!done) {
      const b = await bufferInfo(rig.a, BUFFER);
      if (b) samples.push(b);
      await sleep(100);
    }
    const [reader, writer] = await Promise.all([readerP, writerP]);
    expect(writer.code, writer.stdout + rig.m1.log()).toBe(0);
    const r = report(reader);
    expect(r.bytes).toBe(size);
    expect(r.sha256, 'sha256 of what the reader got').toBe(expected);

    const maxDisk = Math.max(...samples.map((s) => s.diskBytes));
    const maxMemory = Math.max(...samples.map((s) => s.memoryBytes));
    const maxHeld = Math.max(...samples.map((s) => s.bytesHeld));
    expect(samples.length).toBeGreaterThan(3);
    expect(maxDisk, 'the disk tier was used').toBeGreaterThan(0);
    expect(maxMemory, 'memory tier stays within --buffer-memory').toBeLessThanOrEqual(1024 * 1024);
    expect(maxHeld, 'held bytes stay within --buffer-budget (plus one write in flight)').toBeLessThanOrEqual(4 * 1024 * 1024 + 1024 * 1024);
    // the writer was slowed to the reader's pace: it could not finish more than a budget's worth ahead
    expect(r.end - writer.endedAt, 'ms the reader ran on after dd finished').toBeLessThan(5000);

    const rssA = peakRss(rig.a.child.pid!);
    const rssB = peakRss(rig.b.child.pid!);
    console.log(
      `spill: ${size / 2 ** 20} MiB through --buffer-memory 1MiB --buffer-budget 4MiB in ${r.end - t0 | 0} ms; ` +
        `peak in memory ${(maxMemory / 2 ** 20).toFixed(1)} MiB, on disk ${(maxDisk / 2 ** 20).toFixed(1)} MiB, held ${(maxHeld / 2 ** 20).toFixed(1)} MiB (${samples.length} samples); ` +
        `peak RSS (VmHWM) relay A ${(rssA / 1e6).toFixed(1)} MB, relay B ${(rssB / 1e6).toFixed(1)} MB`,
    );
    expect(rssA, 'peak RSS of the buffer relay').toBeLessThan(200e6);
    expect(rssB, 'peak RSS of the forwarding relay').toBeLessThan(200e6);
  });
});

describe('pipe mode: bad input and failures end with an error, never a hang', () => {
  it('a reader of a buffer no writer ever opens gets ETIMEDOUT after --buffer-wait', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir, ['--buffer-wait', '2s']);
    const t0 = Date.now();
    const r = await timed(sh(`cat "${rig.r}"`, { timeoutMs: 30_000 }));
    const ms = r.endedAt - t0;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Connection timed out');
    expect(r.stdout).toBe('');
    expect(ms).toBeGreaterThanOrEqual(1900);
    expect(ms).toBeLessThan(6000);
    console.log(`no writer: cat failed after ${ms} ms: ${r.stderr.trim()}`);
  });

  it('a second writer is refused with EBUSY while the first writes; the readers get the first writer\'s bytes only', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir);
    const readerP = sh(`cat "${rig.r}"`);
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.readers === 1, 20_000, 'the reader on the buffer');
    const first = sh(`for i in $(seq 1 20); do echo "first writer $i"; sleep 0.1; done > "${rig.w}"`);
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.writer === 'attached', 20_000, 'the first writer');
    // from the same mount and from the other mount (through relay B)
    for (const target of [rig.w, rig.r]) {
      const second = await sh(`echo "second writer" > "${target}"`);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toContain('Device or resource busy');
    }
    const py = await run('python3', ['-c', 'import os, sys\ntry:\n    os.open(sys.argv[1], os.O_WRONLY)\n    print("OK")\nexcept OSError as e:\n    print(e.strerror)', rig.w]);
    expect(py.stdout.trim()).toBe('Device or resource busy');
    const w = await first;
    expect(w.code, w.stderr + rig.m1.log()).toBe(0);
    const r = await readerP;
    expect(r.code, r.stderr + rig.m2.log()).toBe(0);
    expect(r.stdout).toBe(Array.from({ length: 20 }, (_, i) => `first writer ${i + 1}\n`).join(''));
  });

  it.each([
    ['on the buffer\'s relay', false],
    ['through a second relay', true],
  ] as const)('a writer %s whose mount dies (SIGKILL) without closing: the reader gets EIO after --buffer-grace, and the relay log says why', async (_where, viaB) => {
    const dir = await tempDir();
    const rig = await pipeRig(dir, ['--buffer-grace', '2s']);
    // the writer's mount is m1 (relay A, which hosts the buffer) or m2 (relay B, which forwards to A)
    const [wm, rm] = viaB ? [rig.m2, rig.m1] : [rig.m1, rig.m2];
    const [wPath, rPath] = viaB ? [rig.r, rig.w] : [rig.w, rig.r];
    const readerP = timed(sh(`cat "${rPath}"`, { timeoutMs: 60_000 }));
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.readers === 1, 20_000, 'the reader on the buffer');
    // `|| exit 1`: once its mount is gone, the writer's writes fail and it stops
    const writerP = sh(`for i in $(seq 1 100); do echo "line $i" || exit 1; sleep 0.2; done > "${wPath}"`, { timeoutMs: 60_000 });
    await waitFor(async () => ((await bufferInfo(rig.a, BUFFER))?.bytesRead ?? 0) >= 14, 20_000, 'the reader to have two lines');

    const killedAt = Date.now();
    wm.child.kill('SIGKILL');
    await wm.exited;
    const r = await readerP;
    const ms = r.endedAt - killedAt;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Input/output error');
    expect(r.stdout.startsWith('line 1\nline 2\n'), r.stdout).toBe(true);
    expect(ms, 'ms from the kill to the reader\'s EIO').toBeGreaterThanOrEqual(1500);
    expect(ms).toBeLessThan(8000);
    const log = rig.a.log();
    expect(log).toMatch(new RegExp(`buffer ${BUFFER}: writer went away without closing`));
    expect(log).toMatch(new RegExp(`the writer of buffer ${BUFFER} went away without closing .* readers get EIO`));

    const w = await writerP;
    expect(w.code, 'the writer saw its mount go').not.toBe(0);
    const u = await run('fusermount', ['-u', '-z', wm.mountpoint]);
    expect(u.code, u.stderr).toBe(0);
    expect(isMounted(wm.mountpoint)).toBe(false);
    expect(rm.child.exitCode, 'the reader\'s mount lives on').toBeNull();
    console.log(`writer lost (${_where}): reader got EIO ${ms} ms after the writer's mount was killed (${r.stderr.trim()}); relay log: ${log.split('\n').filter((l) => l.includes('went away')).join(' | ')}`);
  });

  it('a reader that opens before any writer waits, then gets everything', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir);
    let readerDone = false;
    const readerP = sh(`cat "${rig.r}"`).finally(() => (readerDone = true));
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.readers === 1, 20_000, 'the reader on the buffer');
    await sleep(1500);
    expect(readerDone, 'the reader waits for a writer').toBe(false);
    const b = await bufferInfo(rig.a, BUFFER);
    expect(b?.writer).toBe('none');
    const lines = Array.from({ length: 200 }, (_, i) => `record ${i + 1}: ${'x'.repeat(i % 50)}\n`).join('');
    fs.writeFileSync(path.join(dir, 'lines.txt'), lines);
    const w = await sh(`cat "${path.join(dir, 'lines.txt')}" > "${rig.w}"`);
    expect(w.code, w.stderr + rig.m1.log()).toBe(0);
    const r = await readerP;
    expect(r.code, r.stderr + rig.m2.log()).toBe(0);
    expect(r.stdout).toBe(lines);
  });

  it('a reader that comes after the writer closed still gets everything, once', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir);
    const lines = Array.from({ length: 500 }, (_, i) => `early record ${i + 1}\n`).join('');
    fs.writeFileSync(path.join(dir, 'lines.txt'), lines);
    const w = await sh(`cat "${path.join(dir, 'lines.txt')}" > "${rig.w}"`);
    expect(w.code, w.stderr + rig.m1.log()).toBe(0);
    const b = await bufferInfo(rig.a, BUFFER);
    expect(b?.writer).toBe('closed');
    expect(b?.bytesWritten).toBe(lines.length);
    const r = await sh(`cat "${rig.r}"`);
    expect(r.code, r.stderr + rig.m2.log()).toBe(0);
    expect(r.stdout).toBe(lines);
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER)) === undefined, 10_000, 'the buffer to be dropped once read');
  });

});

describe('pipe mode: status', () => {
  it('kangaroo status on the buffer relay lists the buffer with its writer, readers and bytes while in use', async () => {
    const dir = await tempDir();
    const rig = await pipeRig(dir);
    const readerP = sh(`cat "${rig.r}" > /dev/null`);
    await waitFor(async () => (await bufferInfo(rig.a, BUFFER))?.readers === 1, 20_000, 'the reader on the buffer');
    const writerP = sh(`for i in $(seq 1 40); do echo "status line $i"; sleep 0.1; done > "${rig.w}"`);
    await waitFor(async () => ((await bufferInfo(rig.a, BUFFER))?.bytesRead ?? 0) > 0, 20_000, 'bytes read from the buffer');
    const s = await kangaroo(['status', '--relay', rig.a.address]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toContain('grid buffers (pipe mode):');
    expect(s.stdout).toMatch(/BUFFER\s+WRITER\s+READERS\s+WRITTEN\s+READ\s+HELD\s+IN MEMORY\s+ON DISK/);
    const row = new RegExp(`^\\s+${BUFFER}\\s+attached\\s+1\\s+(\\d+(?:\\.\\d)? [KM]?i?B)\\s+(\\d+(?:\\.\\d)? [KM]?i?B)`, 'm').exec(s.stdout);
    expect(row, s.stdout).not.toBeNull();
    expect(row![1]).not.toBe('0 B');
    expect(row![2]).not.toBe('0 B');
    console.log(`kangaroo status while in use:\n${s.stdout}`);
    expect((await writerP).code).toBe(0);
    expect((await readerP).code).toBe(0);
  });
});

describe('pipe mode: the relay bounds what a writer can make it hold', () => {
  // FAILS today: --buffer-budget holds back only the writes a buffer has taken. A client that
  // sends bufWrite frames without waiting for their replies makes the relay hold every one of
  // them in memory (each write's promise keeps its data), because the connection counts only
  // put data against its queue limit and never pauses the socket for buffer writes.
  it('a writer that does not wait for replies cannot push the relay past --buffer-budget in memory', async () => {
    const dir = await tempDir();
    const relay = await startRelay(dir, 'a', { extra: ['--buffer-memory', '1MiB', '--buffer-budget', '4MiB'] });
    const base = peakRss(relay.child.pid!);
    const client = await RelayClient.connect(relay.address);
    try {
      const { handle } = await client.bufOpen(relay.address, 'flood', 'write');
      const block = Buffer.alloc(1024 * 1024, 7);
      for (let i = 0; i < 250; i++) void client.bufWrite(handle, i * block.length, block).catch(() => undefined);
      await sleep(3000);
      const b = await bufferInfo(relay, 'flood');
      expect(b?.bytesHeld, 'the buffer itself stays within its budget').toBeLessThanOrEqual(4 * 1024 * 1024);
      const peak = peakRss(relay.child.pid!);
      console.log(`flood: 250 MiB of unacknowledged buffer writes; relay peak RSS ${(base / 1e6).toFixed(0)} MB before, ${(peak / 1e6).toFixed(0)} MB after`);
      expect(peak - base, 'bytes the relay took on beyond its start-up size').toBeLessThan(64e6);
    } finally {
      client.destroy();
    }
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RelayClient } from '../../src/client/client.js';
import { KangarooError } from '../../src/errors.js';
import { encodeFrameBuffer, FrameDecoder } from '../../src/protocol/frame.js';
import { Message, PROTOCOL_VERSION, Request } from '../../src/protocol/messages.js';
import { fuzzSeed, makeRng, randomChunks, rawFrame, Rng } from '../helpers/fuzz.js';
import { fuzzCase } from '../helpers/fuzz-conversation.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { RelayProcess, startRelay, tempDir, waitFor } from '../helpers/relay-process.js';

/**
 * A real relay process under hostile peers on raw sockets. For every kind of bad
 * input the relay must answer with an error frame and/or close that one
 * connection, and nothing else: a well-behaved client connected before and one
 * connected after still put, commit and get with the right bytes, nothing is
 * written outside the export, and the process stays up.
 */

/** The error code a reply carries, or its type if it is not an error. */
const codeOf = (m: Message) => (m.type === 'error' ? m.code : m.type);

let fileCounter = 0;

/** A well-behaved client writes a file, commits, and reads back the same bytes (through the relay and on disk). */
async function roundTrip(client: RelayClient, relay: RelayProcess): Promise<void> {
  const name = `good-${process.pid}-${++fileCounter}`;
  const data = Buffer.from(Array.from({ length: 5000 + fileCounter }, (_, i) => (i * 7 + fileCounter) & 0xff));
  await client.put(relay.address, `/ok/${name}`, 0, data.subarray(0, 3000));
  await client.put(relay.address, `/ok/${name}`, 3000, data.subarray(3000));
  await client.commit();
  const got = await client.get(relay.address, `/ok/${name}`, 0, data.length + 100);
  expect(got.equals(data), `read back /ok/${name}`).toBe(true);
  expect(fs.readFileSync(path.join(relay.exportDir!, 'ok', name)).equals(data)).toBe(true);
}

function expectAlive(relay: RelayProcess): void {
  expect(relay.child.exitCode, relay.log()).toBeNull();
  expect(relay.child.signalCode, relay.log()).toBeNull();
}

/** A fresh destination relay with its own temporary directory (both cleaned up by the test). */
async function destination(): Promise<{ dir: string; relay: RelayProcess }> {
  const dir = await tempDir();
  const relay = await startRelay(dir, 'dest', { export: true });
  return { dir, relay };
}

/**
 * Runs `hostile` between two well-behaved clients: one connected (and used) before,
 * one connected after. Both must still round-trip a file, and the relay must be alive.
 */
async function survives(relay: RelayProcess, hostile: () => Promise<void>): Promise<void> {
  const before = await RelayClient.connect(relay.address);
  try {
    await roundTrip(before, relay);
    await hostile();
    expectAlive(relay);
    const after = await RelayClient.connect(relay.address);
    try {
      await roundTrip(before, relay);
      await roundTrip(after, relay);
    } finally {
      await after.close();
    }
  } finally {
    await before.close();
  }
  expectAlive(relay);
}

const HELLO_FIRST = /first frame must be hello/;

describe('a relay under bad input', () => {
  // Guards the connection's decode-error path against arbitrary garbage: the relay reports
  // exactly what its decoder found (the same decoder, run here) and hangs up.
  it('answers random bytes with the decoder error and closes', async () => {
    const { relay } = await destination();
    const seed = fuzzSeed();
    console.log(`random-bytes seed ${seed} (replay with KANGAROO_FUZZ_SEED=${seed})`);
    const rng = makeRng(seed);
    await survives(relay, async () => {
      for (let i = 0; i < 20; i++) {
        const bytes = rng.bytes(1 + rng.int(4096));
        if (i % 2 === 1 && bytes.length >= 4) bytes.writeUInt32BE(bytes.length - 4, 0); // past the size check
        let expected: string | undefined;
        try {
          new FrameDecoder(() => undefined).push(bytes);
        } catch (err) {
          expected = (err as KangarooError).code;
        }
        const peer = await RawPeer.connect(relay.address);
        peer.send(bytes);
        if (expected) {
          const m = await peer.connectionError();
          expect(m, `case ${i}: ${bytes.toString('hex')}`).toMatchObject({ type: 'error', code: expected });
        } else {
          peer.socket.end(); // an incomplete frame: nothing to answer, but a hang-up must be noticed
        }
        await peer.waitClosed();
        expect(peer.replyError).toBeUndefined();
      }
    });
  });

  // Guards memory: a 2 GiB length field is refused at once (FRAME_TOO_LARGE), not buffered for.
  it('refuses an oversized frame header with FRAME_TOO_LARGE, before and after hello', async () => {
    const { relay } = await destination();
    await survives(relay, async () => {
      for (const greet of [false, true]) {
        const peer = await RawPeer.connect(relay.address);
        if (greet) await peer.hello();
        peer.send(Buffer.from('7fffffff', 'hex'), Buffer.alloc(64, 0xab));
        expect(await peer.connectionError()).toMatchObject({ type: 'error', code: 'FRAME_TOO_LARGE' });
        await peer.waitClosed();
      }
    });
  });

  // Guards half-received frames: a peer that dies mid-frame leaves no partial write behind.
  it('drops a truncated frame when the peer goes away, and applies none of it', async () => {
    const { relay } = await destination();
    await survives(relay, async () => {
      for (const hangUp of ['end', 'destroy'] as const) {
        const peer = await RawPeer.connect(relay.address);
        await peer.hello();
        const frame = encodeFrameBuffer(2, { type: 'put', seq: 0, host: relay.address, path: `/truncated-${hangUp}`, offset: 0, data: Buffer.alloc(1000, 1) });
        peer.send(frame.subarray(0, 30));
        await new Promise((r) => setTimeout(r, 50));
        if (hangUp === 'end') {
          peer.socket.end();
          await peer.waitClosed();
        } else {
          peer.destroy();
        }
      }
    });
    expect(fs.existsSync(path.join(relay.exportDir!, 'truncated-end'))).toBe(false);
    expect(fs.existsSync(path.join(relay.exportDir!, 'truncated-destroy'))).toBe(false);
  });

  // Guards dispatch: an opcode the protocol lacks ends the connection with UNKNOWN_OP; a known
  // reply opcode sent as a request is refused on its own id and the connection lives on.
  it('refuses unknown opcodes (UNKNOWN_OP, closed) and reply frames sent as requests (UNKNOWN_OP, still open)', async () => {
    const { relay } = await destination();
    await survives(relay, async () => {
      for (const greet of [false, true]) {
        const peer = await RawPeer.connect(relay.address);
        if (greet) await peer.hello();
        peer.send(rawFrame(99, 5, Buffer.from('whatever')));
        expect(await peer.connectionError()).toMatchObject({ type: 'error', code: 'UNKNOWN_OP' });
        await peer.waitClosed();
      }
      const peer = await RawPeer.connect(relay.address);
      await peer.hello();
      peer.request(2, { type: 'ok' });
      peer.request(3, { type: 'error', code: 'IO', message: 'pretend' });
      peer.request(4, { type: 'status' });
      expect(codeOf(await peer.reply(2))).toBe('UNKNOWN_OP');
      expect(codeOf(await peer.reply(3))).toBe('UNKNOWN_OP');
      expect((await peer.reply(4)).type).toBe('json');
      expect(peer.closed).toBe(false);
      peer.destroy();
    });
  });

  // Guards the handshake: nothing is served or applied before a hello of the right version.
  it('refuses every frame before hello (BAD_FRAME on its id) and applies nothing', async () => {
    const { relay } = await destination();
    await survives(relay, async () => {
      const peer = await RawPeer.connect(relay.address);
      peer.request(5, { type: 'stat', host: relay.address, path: '/' });
      peer.request(6, { type: 'put', seq: 0, host: relay.address, path: '/before-hello', offset: 0, data: Buffer.from('no') });
      peer.request(7, { type: 'bulk', ops: [{ type: 'mkdir', seq: 0, host: relay.address, path: '/before-hello-dir', mode: 0o755 }] });
      peer.request(8, { type: 'commit' });
      peer.request(9, { type: 'hello', version: PROTOCOL_VERSION + 1, clientId: '' });
      for (const id of [5, 6, 7, 8]) {
        const m = await peer.reply(id);
        expect(m, `request ${id}`).toMatchObject({ type: 'error', code: 'BAD_FRAME' });
        expect((m as { message: string }).message).toMatch(HELLO_FIRST);
      }
      expect(await peer.reply(9)).toMatchObject({ type: 'error', code: 'BAD_FRAME', message: expect.stringMatching(/version/) });
      // still not greeted after a refused hello
      peer.request(10, { type: 'status' });
      expect(await peer.reply(10)).toMatchObject({ type: 'error', code: 'BAD_FRAME', message: expect.stringMatching(HELLO_FIRST) });
      // a proper hello opens the connection
      await peer.hello(11);
      peer.request(12, { type: 'status' });
      expect((await peer.reply(12)).type).toBe('json');
      peer.destroy();
    });
    expect(fs.existsSync(path.join(relay.exportDir!, 'before-hello'))).toBe(false);
    expect(fs.existsSync(path.join(relay.exportDir!, 'before-hello-dir'))).toBe(false);
  });

  // Guards confinement: a path that climbs out of the export is refused (PATH_ESCAPE) on the id of
  // the request, for put (which has no reply otherwise), every other operation and inside bulk.
  it('refuses paths that climb out of the export with PATH_ESCAPE on the request id', async () => {
    const { dir, relay } = await destination();
    const host = relay.address;
    const before = fs.readdirSync(dir).sort();
    await survives(relay, async () => {
      const peer = await RawPeer.connect(relay.address);
      await peer.hello();
      const data = Buffer.from('pwned\n');
      peer.request(10, { type: 'put', seq: 0, host, path: '../../etc/passwd', offset: 0, data });
      peer.request(11, { type: 'put', seq: 0, host, path: '/a/../../x', offset: 0, data });
      peer.request(12, { type: 'truncate', seq: 0, host, path: '/..', size: 0 });
      peer.request(13, { type: 'mkdir', seq: 0, host, path: '../escaped-dir', mode: 0o755 });
      peer.request(14, { type: 'unlink', seq: 0, host, path: '/../dest-spool/relay-id' });
      peer.request(15, { type: 'rmdir', seq: 0, host, path: '/../dest-spool' });
      peer.request(16, { type: 'rename', seq: 0, host, path: '/inside', to: '/../outside' });
      peer.request(17, { type: 'get', host, path: '/../dest-spool/relay-id', offset: 0, length: 100 });
      peer.request(18, { type: 'stat', host, path: '/../..' });
      peer.request(19, { type: 'list', host, path: '/..' });
      peer.request(20, { type: 'push', host, path: '/../x' });
      peer.request(21, { type: 'setattr', seq: 0, host, path: '/..', mode: 0o777, mtimeMs: 0 });
      for (let id = 10; id <= 21; id++) expect(codeOf(await peer.reply(id)), `request ${id}`).toBe('PATH_ESCAPE');
      // paths that are malformed rather than escaping: BAD_PATH, same rules
      peer.request(30, { type: 'put', seq: 0, host, path: '/nul\0byte', offset: 0, data });
      peer.request(31, { type: 'put', seq: 0, host, path: '/' + 'n'.repeat(256), offset: 0, data });
      peer.request(32, { type: 'stat', host, path: '/' + 'd/'.repeat(2100) });
      peer.request(33, { type: 'rename', seq: 0, host, path: '/inside', to: '/to\0' });
      for (let id = 30; id <= 33; id++) expect(codeOf(await peer.reply(id)), `request ${id}`).toBe('BAD_PATH');
      // in a bulk, the refusal names its index and the good ops around it are applied
      peer.request(40, {
        type: 'bulk',
        ops: [
          { type: 'put', seq: 0, host, path: '/bulk-good', offset: 0, data },
          { type: 'put', seq: 0, host, path: '/../bulk-bad', offset: 0, data },
          { type: 'mkdir', seq: 0, host, path: '/bulk-dir', mode: 0o755 },
        ],
      });
      const r = await peer.reply(40);
      expect(r.type).toBe('bulkReply');
      expect((r as Extract<Message, { type: 'bulkReply' }>).errors).toMatchObject([{ index: 1, code: 'PATH_ESCAPE' }]);
      peer.request(41, { type: 'commit' });
      expect((await peer.reply(41)).type).toBe('ok');
      // the refusals did not close the connection
      expect(peer.closed).toBe(false);
      peer.destroy();
    });
    expect(fs.readFileSync(path.join(relay.exportDir!, 'bulk-good'), 'utf8')).toBe('pwned\n');
    expect(fs.statSync(path.join(relay.exportDir!, 'bulk-dir')).isDirectory()).toBe(true);
    // nothing new next to the export, and the spool's files are intact
    expect(fs.readdirSync(dir).sort()).toEqual(before);
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
    expect(fs.readFileSync(path.join(relay.spoolDir, 'relay-id'), 'utf8')).toMatch(/^[0-9a-f]+\n$/);
  });

  // Guards strict ordering for resending senders: after a refused op on a connection with a
  // client id, later ordered ops there are refused (ABORTED) rather than applied out of order.
  it('after a refused put on a connection with a client id, later ops there are ABORTED', async () => {
    const { relay } = await destination();
    const host = relay.address;
    await survives(relay, async () => {
      const peer = await RawPeer.connect(relay.address);
      await peer.hello(1, 'hostile-sender');
      peer.request(2, { type: 'put', seq: 1, host, path: '/../x', offset: 0, data: Buffer.from('a') });
      peer.request(3, { type: 'put', seq: 2, host, path: '/after-refusal', offset: 0, data: Buffer.from('b') });
      expect(codeOf(await peer.reply(2))).toBe('PATH_ESCAPE');
      expect(codeOf(await peer.reply(3))).toBe('ABORTED');
      peer.destroy();
    });
    expect(fs.existsSync(path.join(relay.exportDir!, 'after-refusal'))).toBe(false);
  });

  // Guards host parsing: a malformed host name is refused (BAD_ADDRESS) on the request's id,
  // whether the operation is applied (put), answered at once (stat) or in the background (push).
  it('refuses malformed hosts with BAD_ADDRESS on the request id', async () => {
    const { relay } = await destination();
    await survives(relay, async () => {
      const peer = await RawPeer.connect(relay.address);
      await peer.hello();
      const data = Buffer.from('x');
      const bad = ['bad host!', '', '[::1', 'h:99999', 'h:-1', '/etc/passwd', 'a\nb', 'é.example'];
      let id = 100;
      const sent: [number, string][] = [];
      for (const host of bad) {
        const reqs: Request[] = [
          { type: 'put', seq: 0, host, path: '/malformed-host', offset: 0, data },
          { type: 'stat', host, path: '/' },
          { type: 'get', host, path: '/x', offset: 0, length: 1 },
          { type: 'list', host, path: '/' },
          { type: 'push', host, path: '/x' },
          { type: 'mkdir', seq: 0, host, path: '/malformed-host-dir', mode: 0o755 },
        ];
        for (const req of reqs) {
          peer.request(++id, req);
          sent.push([id, `${req.type} host ${JSON.stringify(host)}`]);
        }
      }
      for (const [rid, what] of sent) expect(codeOf(await peer.reply(rid)), what).toBe('BAD_ADDRESS');
      expect(peer.closed).toBe(false);
      peer.destroy();
    });
  });

  // Guards confinement through the file system: a symbolic link inside the export that points
  // outside cannot be written (or read) through; the write fails at commit with PATH_ESCAPE.
  it('refuses to follow a symbolic link out of the export (PATH_ESCAPE at commit)', async () => {
    const { dir, relay } = await destination();
    const host = relay.address;
    const exportDir = relay.exportDir!;
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(outside);
    fs.symlinkSync('/tmp', path.join(exportDir, 'out'));
    fs.symlinkSync(outside, path.join(exportDir, 'mine'));
    fs.symlinkSync(path.join(dir, 'no-such-file'), path.join(exportDir, 'dangling'));
    const unique = `kangaroo-escape-${process.pid}-${Date.now()}`;
    const tmpX = fs.statSync('/tmp/x', { throwIfNoEntry: false });
    await survives(relay, async () => {
      const c = await RelayClient.connect(relay.address);
      try {
        for (const p of ['/out/x', `/out/${unique}`, '/mine/file', '/mine/sub/dir/file', '/dangling']) {
          await c.put(host, p, 0, Buffer.from('escaped'));
          await expect(c.commit(), p).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
        }
        await expect(c.stat(host, '/out')).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
        await expect(c.get(host, '/out/passwd', 0, 10)).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
        await expect(c.list(host, '/mine')).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
        await c.mkdir(host, '/mine/newdir');
        await expect(c.commit()).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
        await c.setattr(host, '/out', { mode: 0o777 });
        await expect(c.commit()).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
        // nor can a file inside be renamed out through the link
        await c.put(host, '/inside', 0, Buffer.from('stays'));
        await c.commit();
        await c.rename(host, '/inside', '/mine/moved');
        await expect(c.commit()).rejects.toMatchObject({ code: 'PATH_ESCAPE' });
        expect(fs.readFileSync(path.join(exportDir, 'inside'), 'utf8')).toBe('stays');
        // the same client goes on working after its refusals
        await roundTrip(c, relay);
      } finally {
        await c.close();
      }
    });
    expect(fs.existsSync(`/tmp/${unique}`)).toBe(false);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'no-such-file'))).toBe(false);
    const tmpXAfter = fs.statSync('/tmp/x', { throwIfNoEntry: false });
    expect(tmpXAfter?.mtimeMs).toBe(tmpX?.mtimeMs);
    expect(tmpXAfter?.size).toBe(tmpX?.size);
  });

  // Guards the destination host: an unauthenticated peer must not be able to plant a set-user-id
  // or set-group-id file (owned by whoever runs the relay, often root) through setattr or mkdir.
  it('never creates set-user-id or set-group-id files or directories for a remote peer', async () => {
    const { relay } = await destination();
    const host = relay.address;
    await survives(relay, async () => {
      const c = await RelayClient.connect(relay.address);
      try {
        await c.put(host, '/tool', 0, Buffer.from('#!/bin/sh\nid\n'));
        await c.setattr(host, '/tool', { mode: 0o6755 });
        await c.mkdir(host, '/shared', 0o2775);
        await c.mkdir(host, '/shared2', 0o755);
        await c.setattr(host, '/shared2', { mode: 0o3777 });
        await c.commit();
      } finally {
        await c.close();
      }
    });
    for (const name of ['tool', 'shared', 'shared2']) {
      const mode = fs.statSync(path.join(relay.exportDir!, name)).mode;
      expect(mode & 0o6000, `${name} has mode ${(mode & 0o7777).toString(8)}`).toBe(0);
    }
    // the ordinary permission bits do come through
    expect(fs.statSync(path.join(relay.exportDir!, 'tool')).mode & 0o777).toBe(0o755);
  });

  // Guards a hop against a poison write: an op the destination can never apply (a put 1 PiB into
  // a file: EFBIG) must be refused for good, blocking its own file only, not retried for ever in
  // front of every later op on that hop.
  it('delivers later writes past a put the destination can never apply', async () => {
    const dir = await tempDir();
    const dest = await startRelay(dir, 'dest', { export: true });
    const first = await startRelay(dir, 'first');
    const c = await RelayClient.connect(first.address);
    try {
      await c.put(dest.address, '/huge-offset', 2 ** 50, Buffer.from('x'));
      await c.put(dest.address, '/after', 0, Buffer.from('delivered'));
      await c.commit(); // the first hop only spools: it cannot know yet
    } finally {
      await c.close();
    }
    const after = path.join(dest.exportDir!, 'after');
    await waitFor(() => fs.existsSync(after), 15_000, '/after to be delivered').catch((err: Error) => {
      throw new Error(`${err.message}; the first hop's log ends:\n${first.log().slice(-1500)}`);
    });
    expect(fs.readFileSync(after, 'utf8')).toBe('delivered');
    expectAlive(first);
    expectAlive(dest);
  });

  // Guards memory against a peer that asks and never reads: replies waiting for a slow reader
  // must hold up its further requests (as a full spool holds up writers), not pile up in the relay.
  it.skipIf(process.platform !== 'linux')('does not buffer replies without bound for a peer that never reads them', async () => {
    const { relay } = await destination();
    const host = relay.address;
    const MB = 1024 * 1024;
    const rssMB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${relay.child.pid}/status`, 'utf8'))![1]) / 1024;
    let baseline = 0;
    let peak = 0;
    await survives(relay, async () => {
      const peer = await RawPeer.connect(relay.address);
      await peer.hello();
      peer.request(2, { type: 'truncate', seq: 0, host, path: '/big', size: 8 * MB });
      peer.request(3, { type: 'commit' });
      expect((await peer.reply(3)).type).toBe('ok');
      baseline = peak = rssMB();
      peer.socket.pause(); // from now on this peer reads nothing
      for (let i = 0; i < 64; i++) peer.request(10 + i, { type: 'get', host, path: '/big', offset: 0, length: 8 * MB });
      for (let t = 0; t < 30; t++) {
        await new Promise((r) => setTimeout(r, 100));
        peak = Math.max(peak, rssMB());
      }
      peer.destroy();
    });
    console.log(`relay RSS ${baseline.toFixed(0)} MB before 64 unread 8 MB gets, peak ${peak.toFixed(0)} MB`);
    expect(peak - baseline, 'relay memory growth (MB) while 512 MB of replies wait for a reader').toBeLessThan(160);
  });

  // Guards the whole request path (decoder, handshake, handlers, export, spool) against whatever
  // a live peer can send: for a fixed time, mutated valid conversations on many connections.
  it('survives about 8 seconds of fuzzed conversations', async () => {
    const { relay } = await destination();
    const seed = fuzzSeed();
    console.log(`relay fuzz seed ${seed} (replay with KANGAROO_FUZZ_SEED=${seed})`);
    const outcomes = new Map<string, number>();
    const tally = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    let cases = 0;
    let replies = 0;
    const started = Date.now();
    await survives(relay, async () => {
      const deadline = Date.now() + 8000;
      const worker = async () => {
        while (Date.now() < deadline) {
          const index = cases++;
          // each case has its own generator, so one case can be replayed from the seed and its index
          const rng = makeRng((seed + Math.imul(index + 1, 0x9e3779b1)) >>> 0);
          const { strategy, stream } = fuzzCase(rng, relay.address);
          const result = await runCase(rng, relay, stream);
          tally(`${strategy}:${result.outcome}`);
          replies += result.replies;
          if (relay.child.exitCode !== null || relay.child.signalCode !== null) {
            throw new Error(`relay died on fuzz case ${index} (seed ${seed}, ${strategy}): ${stream.toString('hex').slice(0, 2000)}\n${relay.log().slice(-4000)}`);
          }
          if (result.replyError) throw new Error(`relay sent an undecodable reply on case ${index} (seed ${seed}): ${String(result.replyError)}`);
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
    });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`relay fuzz: ${cases} cases, ${replies} reply frames, ${secs} s (seed ${seed})`, Object.fromEntries([...outcomes].sort()));
    expect(cases).toBeGreaterThan(100);
    expect(relay.log()).not.toMatch(/unhandled|uncaught/i);
  }, 90_000);
});

/**
 * Sends one case on a fresh connection in random chunks, waits until the relay closes it or
 * falls quiet, then hangs up (politely or not). Returns what happened.
 */
async function runCase(rng: Rng, relay: RelayProcess, stream: Buffer): Promise<{ outcome: string; replies: number; replyError: unknown }> {
  const peer = await RawPeer.connect(relay.address);
  try {
    for (const c of randomChunks(rng, stream)) peer.send(c);
    const started = Date.now();
    const quietFor = 20 + rng.int(60);
    await peer
      .until('quiet', () => (peer.closed || Date.now() - Math.max(peer.lastActivity, started) > quietFor ? true : undefined), 3000, 10)
      .catch(() => undefined);
    const connErr = peer.frames.find((f) => f.id === 0 && f.msg.type === 'error')?.msg;
    const outcome = connErr ? `error-${codeOf(connErr)}` : peer.closed ? 'closed' : 'open';
    return { outcome, replies: peer.frames.length, replyError: peer.replyError };
  } finally {
    if (rng.chance(0.5)) peer.socket.end();
    else peer.destroy();
    setTimeout(() => peer.destroy(), 1000).unref();
  }
}

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KangarooError } from '../../src/errors.js';
import { DirEntry, FileInfo, OrderedOp } from '../../src/protocol/messages.js';
import { readThrough, statThrough, Upstream } from '../../src/relay/read-through.js';
import { Spool, SpooledOp } from '../../src/spool/spool.js';
import { applyOverlays, FileView, isSelfContained, viewOf, viewSize } from '../../src/spool/view.js';

const HOST = '127.0.0.1:9';
const MAX = Number.MAX_SAFE_INTEGER;

let dir: string;
let spool: Spool;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kangaroo-view-'));
  // memoryBytes 0: overlay data is read back from the journal, as after a restart
  spool = await Spool.open({ dir, maxBytes: 64 * 1024 * 1024, memoryBytes: 0 });
});

afterEach(async () => {
  await spool.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function accept(op: OrderedOp): SpooledOp {
  const sop = spool.accept(op, { clientId: '', seq: 0 });
  expect(sop).toBeDefined();
  return sop!;
}

const put = (p: string, offset: number, data: string | Buffer) =>
  accept({ type: 'put', seq: 0, host: HOST, path: p, offset, data: typeof data === 'string' ? Buffer.from(data) : data });
const truncate = (p: string, size: number) => accept({ type: 'truncate', seq: 0, host: HOST, path: p, size });
const unlink = (p: string) => accept({ type: 'unlink', seq: 0, host: HOST, path: p });
const rename = (p: string, to: string) => accept({ type: 'rename', seq: 0, host: HOST, path: p, to });
const mkdir = (p: string) => accept({ type: 'mkdir', seq: 0, host: HOST, path: p, mode: 0o755 });

const load = (sop: SpooledOp) => spool.data(sop);

/** Applies a view to a window, with the base bytes the way read-through fetches them from `base`. */
async function windowOf(v: FileView, offset: number, length: number, base?: Buffer): Promise<string> {
  let baseBytes: Buffer = Buffer.alloc(0);
  let exactEnd: number | undefined;
  if (v.base && base) {
    const end = Math.min(offset + length, v.base.limit, base.length);
    baseBytes = base.subarray(Math.min(offset, end), end);
    if (base.length < Math.min(offset + length, v.base.limit)) exactEnd = base.length;
    else if (v.base.limit < offset + length) exactEnd = v.base.limit;
  } else if (v.base) {
    exactEnd = 0; // the base does not exist remotely
  }
  const out = await applyOverlays(v, offset, length, baseBytes, exactEnd, load);
  return out.toString('latin1').replace(/\0/g, '.');
}

describe('viewOf / applyOverlays / viewSize', () => {
  // A file created by truncate 0 owes nothing to the remote; overlapping puts apply in accept order.
  it('builds a fresh file from truncate 0 and overlapping puts', async () => {
    truncate('/f', 0);
    put('/f', 0, 'aaaaaaaaaa');
    put('/f', 5, 'bbbbbbbbbb');
    const v = viewOf(spool, HOST, '/f');
    expect(v.state).toBe('file');
    expect(v.base).toEqual({ path: '/f', limit: 0 });
    expect(isSelfContained(v)).toBe(true);
    expect(v.overlays).toHaveLength(3);
    expect(viewSize(v, 1000)).toBe(15);
    expect(await windowOf(v, 0, 100)).toBe('aaaaabbbbbbbbbb');
    expect(await windowOf(v, 3, 5)).toBe('aabbb');
    expect(await windowOf(v, 15, 10)).toBe('');
    expect(await windowOf(v, 40, 10)).toBe('');
  });

  // A shrinking truncate cuts later reads; an extending truncate shows zeros, not old bytes.
  it('applies cutting and extending truncates in order', async () => {
    truncate('/f', 0);
    put('/f', 0, 'aaaaaaaaaa');
    put('/f', 5, 'bbbbbbbbbb');
    truncate('/f', 8);
    let v = viewOf(spool, HOST, '/f');
    expect(viewSize(v, 0)).toBe(8);
    expect(await windowOf(v, 0, 100)).toBe('aaaaabbb');

    truncate('/f', 12);
    v = viewOf(spool, HOST, '/f');
    expect(viewSize(v, 0)).toBe(12);
    expect(await windowOf(v, 0, 100)).toBe('aaaaabbb....');
    expect(await windowOf(v, 6, 4)).toBe('bb..');

    put('/f', 20, 'z');
    v = viewOf(spool, HOST, '/f');
    expect(viewSize(v, 0)).toBe(21);
    expect(await windowOf(v, 0, 100)).toBe('aaaaabbb............z');
  });

  // Without a truncate the remote file shows through below the overlays.
  it('overlays puts on a remote base', async () => {
    const base = Buffer.from('R'.repeat(100));
    put('/r', 10, 'xxxxx');
    const v = viewOf(spool, HOST, '/r');
    expect(v.state).toBe('file');
    expect(v.base).toEqual({ path: '/r', limit: MAX });
    expect(isSelfContained(v)).toBe(false);
    expect(viewSize(v, 100)).toBe(100);
    expect(await windowOf(v, 0, 20, base)).toBe('RRRRRRRRRRxxxxxRRRRR');
    // the base read filled the window: the size is not known, the window is returned whole
    expect(await applyOverlays(v, 0, 20, base.subarray(0, 20), undefined, load)).toHaveLength(20);
  });

  // A base shorter than the window bounds the answer exactly, and puts past it extend the file with a zero gap.
  it('stops at the base end and extends with puts past it', async () => {
    const base = Buffer.from('0123456789');
    put('/s', 2, 'ab');
    let v = viewOf(spool, HOST, '/s');
    expect(await windowOf(v, 0, 100, base)).toBe('01ab456789');
    expect(await windowOf(v, 8, 100, base)).toBe('89');
    expect(await windowOf(v, 10, 100, base)).toBe('');

    put('/s', 14, 'yy');
    v = viewOf(spool, HOST, '/s');
    expect(viewSize(v, base.length)).toBe(16);
    expect(await windowOf(v, 0, 100, base)).toBe('01ab456789....yy');
    expect(await windowOf(v, 8, 4, base)).toBe('89..');
  });

  // A truncate on a remote base limits how much of the base shows, even after a later extend.
  it('limits the base after truncate', async () => {
    const base = Buffer.from('RRRRRRRRRR');
    truncate('/t', 4);
    put('/t', 1, 'x');
    truncate('/t', 7);
    const v = viewOf(spool, HOST, '/t');
    expect(v.base).toEqual({ path: '/t', limit: 4 });
    expect(viewSize(v, base.length)).toBe(7);
    expect(await windowOf(v, 0, 100, base)).toBe('RxRR...');
    expect(await windowOf(v, 5, 100, base)).toBe('..');
  });

  // After unlink, the remote file no longer shows through: a put starts a new file.
  it('starts a new file after unlink', async () => {
    const base = Buffer.from('R'.repeat(50));
    put('/u', 0, 'old');
    unlink('/u');
    let v = viewOf(spool, HOST, '/u');
    expect(v.state).toBe('absent');
    expect(v.base).toBeNull();
    expect(v.overlays).toEqual([]);

    put('/u', 2, 'pp');
    v = viewOf(spool, HOST, '/u');
    expect(v.state).toBe('file');
    expect(v.base).toBeNull();
    expect(isSelfContained(v)).toBe(true);
    expect(viewSize(v, base.length)).toBe(4);
    expect(await windowOf(v, 0, 100, base)).toBe('..pp');
  });

  // rename a→b: b shows a's remote base and a's overlays; a reads as absent.
  it('follows a rename to its source', async () => {
    truncate('/a', 0);
    put('/a', 0, 'hello');
    put('/b', 0, 'overwritten by the rename');
    rename('/a', '/b');
    const b = viewOf(spool, HOST, '/b');
    expect(b.state).toBe('file');
    expect(b.base).toMatchObject({ path: '/a', limit: 0 });
    expect(await windowOf(b, 0, 100)).toBe('hello');
    expect(viewOf(spool, HOST, '/a').state).toBe('absent');

    // later writes to b land on top of what came from a; a new a is a new file
    put('/b', 5, ' world');
    put('/a', 0, 'new a');
    expect(await windowOf(viewOf(spool, HOST, '/b'), 0, 100)).toBe('hello world');
    const a = viewOf(spool, HOST, '/a');
    expect(a.base).toBeNull();
    expect(await windowOf(a, 0, 100)).toBe('new a');
  });

  // rename of a file known only remotely: b's bytes come from a's remote file.
  it('reads a renamed remote file from its old name', async () => {
    const remoteA = Buffer.from('remote bytes of a');
    put('/a', 0, 'R');
    rename('/a', '/b');
    const b = viewOf(spool, HOST, '/b');
    expect(b.base).toMatchObject({ path: '/a', limit: MAX });
    expect(await windowOf(b, 0, 100, remoteA)).toBe('Remote bytes of a');
  });

  // A chain of renames resolves through every step (a→b, b→c).
  it('follows a chain of renames', async () => {
    truncate('/a', 0);
    put('/a', 0, 'chain');
    rename('/a', '/b');
    put('/b', 5, '!');
    rename('/b', '/c');
    const c = viewOf(spool, HOST, '/c');
    expect(await windowOf(c, 0, 100)).toBe('chain!');
    expect(viewOf(spool, HOST, '/a').state).toBe('absent');
    expect(viewOf(spool, HOST, '/b').state).toBe('absent');
  });

  // mkdir decides the state without the remote.
  it('reports a directory after mkdir', () => {
    mkdir('/d');
    const v = viewOf(spool, HOST, '/d');
    expect(v.state).toBe('dir');
    expect(v.base).toBeNull();
    expect(isSelfContained(v)).toBe(true);
  });

  // With no spooled op the view knows nothing and defers to the remote file.
  it('is unknown for a file with no spooled ops', () => {
    const v = viewOf(spool, HOST, '/nothing');
    expect(v).toEqual({ base: { path: '/nothing', limit: MAX }, overlays: [], state: 'unknown', attrs: {} });
  });

  // upTo limits the view to ops accepted up to a seq (used for a rename's source).
  it('honours upTo', async () => {
    truncate('/v', 0);
    const first = put('/v', 0, 'first');
    put('/v', 0, 'SECOND');
    expect(await windowOf(viewOf(spool, HOST, '/v', first.localSeq), 0, 100)).toBe('first');
    expect(await windowOf(viewOf(spool, HOST, '/v'), 0, 100)).toBe('SECOND');
  });

  // Delivered ops leave the view: what they wrote is then the remote's to show.
  it('drops delivered ops from the view', async () => {
    const t = truncate('/g', 0);
    const p1 = put('/g', 0, 'abc');
    put('/g', 3, 'def');
    spool.markDelivered([t, p1]);
    const v = viewOf(spool, HOST, '/g');
    expect(v.base).toEqual({ path: '/g', limit: MAX });
    expect(v.overlays).toHaveLength(1);
    expect(await windowOf(v, 0, 100, Buffer.from('abc'))).toBe('abcdef');
  });
});

/** An in-memory next hop. */
class FakeRemote implements Upstream {
  files = new Map<string, Buffer>();
  async get(p: string, offset: number, length: number): Promise<Buffer> {
    const f = this.files.get(p);
    if (!f) throw new KangarooError('NOT_FOUND', `${p} not found`);
    return Buffer.from(f.subarray(Math.min(offset, f.length), Math.min(offset + length, f.length)));
  }
  async stat(p: string): Promise<FileInfo> {
    const f = this.files.get(p);
    if (!f) throw new KangarooError('NOT_FOUND', `${p} not found`);
    return { kind: 'file', size: f.length, mtimeMs: 0, mode: 0o644 };
  }
  async list(): Promise<DirEntry[]> {
    return [];
  }
}

/** Applies an op to a map of files the way the destination does. */
function applyToModel(files: Map<string, Buffer>, op: OrderedOp): void {
  switch (op.type) {
    case 'put': {
      const old = files.get(op.path) ?? Buffer.alloc(0);
      const next = Buffer.alloc(Math.max(old.length, op.offset + op.data.length));
      old.copy(next);
      op.data.copy(next, op.offset);
      files.set(op.path, next);
      return;
    }
    case 'truncate': {
      const old = files.get(op.path) ?? Buffer.alloc(0);
      const next = Buffer.alloc(op.size);
      old.copy(next, 0, 0, Math.min(old.length, op.size));
      files.set(op.path, next);
      return;
    }
    case 'unlink':
      files.delete(op.path);
      return;
    case 'rename': {
      const f = files.get(op.path);
      if (f) {
        files.set(op.to, f);
        files.delete(op.path);
      }
      return;
    }
    default:
      throw new Error(`model does not do ${op.type}`);
  }
}

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('read-your-writes against a model', () => {
  // Random puts/truncates/unlinks/renames over a remote base, partly delivered: every read and size
  // through the spool equals the file as it will be once everything is delivered.
  it('matches a model of the destination for random op sequences', async () => {
    const paths = ['/a', '/b', '/c'];
    for (let round = 0; round < 300; round++) {
      const rand = rng(round + 1);
      const int = (n: number) => Math.floor(rand() * n);
      const remote = new FakeRemote();
      const model = new Map<string, Buffer>();
      for (const p of paths) {
        if (rand() < 0.6) {
          const b = Buffer.alloc(int(60), 0x41 + int(26));
          remote.files.set(p, b);
          model.set(p, Buffer.from(b));
        }
      }
      const hostSpool = spool;
      const pendingOps: SpooledOp[] = [];
      for (let i = 0; i < 12; i++) {
        const p = paths[int(paths.length)]!;
        const r = rand();
        let op: OrderedOp;
        if (r < 0.5) op = { type: 'put', seq: 0, host: HOST, path: p, offset: int(70), data: Buffer.alloc(1 + int(20), 0x61 + int(26)) };
        else if (r < 0.7) op = { type: 'truncate', seq: 0, host: HOST, path: p, size: int(80) };
        else if (r < 0.8 && model.has(p)) op = { type: 'unlink', seq: 0, host: HOST, path: p };
        else if (model.has(p)) op = { type: 'rename', seq: 0, host: HOST, path: p, to: paths.filter((q) => q !== p)[int(paths.length - 1)]! };
        else continue;
        applyToModel(model, op);
        pendingOps.push(hostSpool.accept(op, { clientId: '', seq: 0 })!);
      }
      // the next hop has committed a prefix of them
      const delivered = pendingOps.splice(0, int(pendingOps.length + 1));
      for (const sop of delivered) applyToModel(remote.files, await hostSpool.materialize(sop));
      hostSpool.markDelivered(delivered);

      for (const p of paths) {
        const want = model.get(p);
        const v = viewOf(hostSpool, HOST, p);
        const context = `round ${round} ${p}: ${JSON.stringify(pendingOps.map((s) => ({ ...s.op, data: undefined })))}`;
        if (!want) {
          await expect(readThrough(hostSpool, HOST, p, 0, 200, remote), context).rejects.toMatchObject({ code: 'NOT_FOUND' });
          continue;
        }
        const baseFile = v.base ? remote.files.get(v.base.path) : undefined;
        expect(viewSize(v, baseFile?.length ?? 0), context).toBe(want.length);
        for (const [off, len] of [[0, 200], [int(90), 1 + int(40)], [want.length, 10]] as const) {
          const got = await readThrough(hostSpool, HOST, p, off, len, remote);
          expect(got.toString('hex'), `${context} window ${off}+${len}`).toBe(want.subarray(off, off + len).toString('hex'));
        }
      }
      // start the next round from an empty spool
      hostSpool.markDelivered(pendingOps);
    }
  });

  // stat must ask the next hop about the file the view's bytes come from: after rename a→b of a
  // remote-only file, b's size is a's (read already uses a), not "not found".
  it('stats a renamed remote-only file through its source', async () => {
    const remote = new FakeRemote();
    remote.files.set('/a', Buffer.from('0123456789'));
    rename('/a', '/b');
    const read = await readThrough(spool, HOST, '/b', 0, 100, remote);
    expect(read.toString()).toBe('0123456789');
    await expect(statThrough(spool, HOST, '/a', remote)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const info = await statThrough(spool, HOST, '/b', remote);
    expect(info.size).toBe(10);
  });
});

import { parentPath } from '../address.js';
import { KangarooError } from '../errors.js';
import { DirEntry, FileInfo } from '../protocol/messages.js';
import { Spool, SpooledOp } from '../spool/spool.js';
import { applyOverlays, FileView, viewInfo, viewOf, withAttrs } from '../spool/view.js';

/**
 * Answers get, stat and list for a host this relay forwards to: what the next
 * hop holds, with this relay's undelivered ops applied on top (read-your-writes
 * on the same first hop; stat sizes include undelivered writes).
 */
export interface Upstream {
  get(path: string, offset: number, length: number): Promise<Buffer>;
  stat(path: string): Promise<FileInfo>;
  list(path: string): Promise<DirEntry[]>;
}

/**
 * Asks the next hop about the file under a view's base. The base is the file's name
 * before the renames still in the spool; a rename already sent (in flight, or
 * acknowledged since the view was taken) may be applied at the next hop, and then
 * the old name is gone there and the bytes are under the new one. Re-applying the
 * overlays to that answer is harmless: puts and truncates applied again in order
 * give the same file.
 */
async function fromBase<T>(spool: Spool, v: FileView, path: string, ask: (p: string) => Promise<T>): Promise<T> {
  let p = v.base?.path ?? path;
  for (const rename of [...(v.base?.renames ?? []), undefined]) {
    try {
      return await ask(p);
    } catch (err) {
      const sent = rename !== undefined && (rename.inflight || !spool.isPending(rename));
      if (!sent || rename.op.type !== 'rename' || KangarooError.from(err).code !== 'NOT_FOUND') throw err;
      p = rename.op.to;
    }
  }
  throw new KangarooError('INTERNAL', 'unreachable');
}

export async function readThrough(spool: Spool, host: string, path: string, offset: number, length: number, up: Upstream): Promise<Buffer> {
  try {
    return await readOnce(spool, host, path, offset, length, up);
  } catch (err) {
    // a spooled op delivered (and its segment freed) while we read: the next hop has it now
    if (KangarooError.from(err).code !== 'SPOOL_MOVED') throw err;
    return readOnce(spool, host, path, offset, length, up);
  }
}

async function readOnce(spool: Spool, host: string, path: string, offset: number, length: number, up: Upstream): Promise<Buffer> {
  const v = viewOf(spool, host, path);
  if (v.state === 'absent') throw new KangarooError('NOT_FOUND', `${path} does not exist`);
  if (v.state === 'dir') throw new KangarooError('IS_DIR', `${path} is a directory`);
  if (v.overlays.length === 0 && v.base) return fromBase(spool, v, path, (p) => up.get(p, offset, length));
  // The spooled bytes are taken before the next hop is asked, while they are surely still here.
  const end = offset + length;
  const loaded = new Map<SpooledOp, Buffer>();
  const toRead: SpooledOp[] = [];
  for (const sop of v.overlays) {
    if (sop.op.type !== 'put' || sop.dataLength === 0) continue;
    if (sop.op.offset >= end || sop.op.offset + sop.dataLength <= offset) continue;
    if (sop.data) loaded.set(sop, sop.data);
    else toRead.push(sop);
  }
  for (const sop of toRead) {
    try {
      loaded.set(sop, await spool.data(sop));
    } catch (err) {
      throw new KangarooError('SPOOL_MOVED', 'spooled data was delivered while being read', { cause: err });
    }
  }
  let baseBytes: Buffer = Buffer.alloc(0);
  let exactEnd: number | undefined;
  if (v.base && v.base.limit > offset) {
    const want = Math.min(length, v.base.limit - offset);
    try {
      baseBytes = await fromBase(spool, v, path, (p) => up.get(p, offset, want));
      if (baseBytes.length < want) exactEnd = offset + baseBytes.length;
      else if (want < length) exactEnd = v.base.limit;
    } catch (err) {
      if (KangarooError.from(err).code !== 'NOT_FOUND') throw err;
      exactEnd = 0;
    }
  } else if (v.base) {
    // nothing of the base shows at this offset; its size still bounds the file unless a truncate fixed it
    exactEnd = v.base.limit;
  }
  return applyOverlays(v, offset, length, baseBytes, exactEnd, async (sop) => loaded.get(sop) ?? spool.data(sop));
}

async function baseInfo(spool: Spool, v: FileView, path: string, up: Upstream): Promise<FileInfo | undefined> {
  if (!v.base) return undefined;
  if (v.base.limit === 0 && v.overlays.length > 0) return undefined;
  try {
    return await fromBase(spool, v, path, (p) => up.stat(p));
  } catch (err) {
    const e = KangarooError.from(err);
    if (e.code === 'NOT_FOUND' && v.overlays.length > 0) return undefined;
    // With undelivered writes we still know the file exists: answer from the spool.
    if (e.transient && v.overlays.length > 0) return undefined;
    throw e;
  }
}

export async function statThrough(spool: Spool, host: string, path: string, up: Upstream): Promise<FileInfo> {
  const v = viewOf(spool, host, path);
  if (v.state === 'absent') throw new KangarooError('NOT_FOUND', `${path} does not exist`);
  if (v.state === 'unknown') {
    // after a rename the bytes (and so the answer) live under the source's name
    if (hasPendingChildren(spool, host, path)) {
      const info = await fromBase(spool, v, path, (p) => up.stat(p)).catch(() => undefined);
      return withAttrs(v, info ?? { kind: 'dir', size: 4096, mtimeMs: Date.now(), mode: 0o755 });
    }
    return withAttrs(v, await fromBase(spool, v, path, (p) => up.stat(p)));
  }
  return viewInfo(v, await baseInfo(spool, v, path, up));
}

function hasPendingChildren(spool: Spool, host: string, dir: string): boolean {
  const prefix = dir === '/' ? '/' : dir + '/';
  return spool.allFiles().some((f) => f.host === host && f.path.startsWith(prefix) && f.ops.size > 0);
}

export async function listThrough(spool: Spool, host: string, dir: string, up: Upstream): Promise<DirEntry[]> {
  const dv = viewOf(spool, host, dir);
  if (dv.state === 'absent') throw new KangarooError('NOT_FOUND', `${dir} does not exist`);
  // The spool's side is taken before the next hop is asked: ops delivered while it answers are
  // then on both sides (harmless) instead of on neither (a file that vanishes for a moment).
  const prefix = dir === '/' ? '/' : dir + '/';
  const implied = new Set<string>();
  const views: { name: string; path: string; v: FileView }[] = [];
  for (const f of spool.allFiles()) {
    if (f.host !== host || !f.path.startsWith(prefix) || f.ops.size === 0) continue;
    const rest = f.path.slice(prefix.length);
    const slash = rest.indexOf('/');
    // a pending file deeper down implies the directory on the way (parents are created on delivery)
    if (slash >= 0) implied.add(rest.slice(0, slash));
    else views.push({ name: rest, path: f.path, v: viewOf(spool, host, f.path) });
  }
  const entries = new Map<string, DirEntry>();
  if (dv.state !== 'dir') {
    try {
      for (const e of await up.list(dir)) entries.set(e.name, e);
    } catch (err) {
      const e = KangarooError.from(err);
      if (!(e.code === 'NOT_FOUND' || e.transient) || (implied.size === 0 && views.length === 0)) throw e;
    }
  }
  for (const name of implied) {
    if (!entries.has(name)) entries.set(name, { name, kind: 'dir', size: 4096, mtimeMs: Date.now(), mode: 0o755 });
  }
  for (const { name, path, v } of views) {
    if (v.state === 'absent') {
      entries.delete(name);
    } else if (v.state !== 'unknown') {
      const known = entries.get(name);
      entries.set(name, { name, ...viewInfo(v, known && v.base ? known : undefined) });
    } else if (v.base && v.base.path !== path) {
      // renamed here from a file the next hop already has: it shows under its new name now
      // (and if the rename itself arrived there meanwhile, under that name upstream)
      const info = (await up.stat(v.base.path).catch(() => undefined)) ?? (await up.stat(path).catch(() => undefined));
      if (info) entries.set(name, { name, ...withAttrs(v, info) });
    }
  }
  return [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

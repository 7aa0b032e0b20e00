import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { normalizePath } from '../address.js';
import { KangarooError } from '../errors.js';
import { DirEntry, FileInfo, NO_MODE, OrderedOp, putIntact } from '../protocol/messages.js';

/**
 * The destination role: applies operations to files under an export root.
 *
 * Every path is confined to the root: `..` that climbs out is refused lexically,
 * and a symbolic link anywhere on the way that resolves outside the root is
 * refused too (PATH_ESCAPE, a permission error). Parent directories are created
 * as needed. Replayed operations are harmless: unlink and rmdir of a missing
 * entry succeed, mkdir of an existing directory succeeds, and a rename whose
 * source is gone but whose target exists counts as done.
 *
 * `commit()` fsyncs every file and directory changed since the last commit;
 * `push(path)` fsyncs one file (and its directory).
 */
export class ExportRoot {
  private realRoot = '';
  private open = new Map<string, fsp.FileHandle>();
  /**
   * The file each kept handle was opened on, and the commit count when its name last
   * led there. Programs at the destination move and replace files too (a consumer
   * taking results away): a handle kept under the old name would then write the
   * next run's data into the file moved away, truncating it first. So a handle is
   * checked against its name once per commit before it is used again.
   */
  private opened = new WeakMap<fsp.FileHandle, { dev: number; ino: number; checkedAt: number }>();
  private commits = 0;
  private dirtyFiles = new Set<string>();
  private dirtyDirs = new Set<string>();
  /**
   * fsyncs still running, each until it settles. Whoever started one took its file or
   * directories out of the dirty sets, so a commit or push that finds them clean must
   * still wait for it (see synced).
   */
  private syncing = new Set<Promise<unknown>>();
  /**
   * The first failed fsync of a file, kept: the file left the dirty set when its fsync began,
   * and after a writeback error the kernel may have marked the lost pages clean, so a later
   * fsync would succeed without them. Every later commit and push fails with it; a restart
   * reloads the applied-ops watermarks of the last good commit, so the hop sending here sends
   * those operations again and they are applied anew.
   */
  private syncError: KangarooError | undefined;
  private static readonly MAX_OPEN = 64;

  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true });
    this.realRoot = await fsp.realpath(this.root);
  }

  /** The local name of a remote path, before any check of where it leads. */
  private lexical(remote: string): string {
    return path.resolve(this.realRoot, '.' + normalizePath(remote));
  }

  /** Maps a remote path to a local one inside the root, refusing any way out. */
  async resolve(remote: string): Promise<string> {
    const local = this.lexical(remote);
    // Find the deepest existing ancestor (or the path itself) and check where it really is.
    let probe = local;
    for (;;) {
      try {
        const real = await fsp.realpath(probe);
        if (real !== this.realRoot && !real.startsWith(this.realRoot + path.sep)) {
          throw new KangarooError('PATH_ESCAPE', `"${remote}" leads outside the export through a symbolic link`);
        }
        break;
      } catch (err) {
        if (err instanceof KangarooError) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          // a dangling link is itself a way out: refuse it
          const st = await fsp.lstat(probe).catch(() => undefined);
          if (st?.isSymbolicLink()) throw new KangarooError('PATH_ESCAPE', `"${remote}" is a dangling symbolic link`);
          if (probe === this.realRoot) break;
          probe = path.dirname(probe);
          continue;
        }
        if (code === 'ELOOP') throw new KangarooError('PATH_ESCAPE', `"${remote}" has a symbolic link loop`);
        throw KangarooError.from(err, remote);
      }
    }
    return local;
  }

  private async handle(local: string, create: boolean): Promise<fsp.FileHandle> {
    let fd = this.open.get(local);
    if (fd && !(await this.stillNamed(local, fd))) {
      if (this.open.get(local) === fd) {
        this.open.delete(local);
        await fd.close().catch(() => undefined);
      }
    }
    // The look above waited: meanwhile another connection's op may have closed this handle (a
    // rename, an unlink, the handle limit) or opened the name afresh. Only what the table holds
    // now is usable; putting the closed one back failed every later put with "file closed".
    fd = this.open.get(local);
    if (fd) {
      // keep recently used handles at the end (LRU order)
      this.open.delete(local);
      this.open.set(local, fd);
      return fd;
    }
    if (create) await this.ensureParent(local);
    fd = await fsp.open(local, create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR, 0o644);
    const st = await fd.stat();
    if (st.isDirectory()) {
      await fd.close();
      throw new KangarooError('IS_DIR', `${local} is a directory`);
    }
    this.opened.set(fd, { dev: st.dev, ino: st.ino, checkedAt: this.commits });
    this.open.set(local, fd);
    if (this.open.size > ExportRoot.MAX_OPEN) {
      const [oldPath, oldFd] = this.open.entries().next().value as [string, fsp.FileHandle];
      this.open.delete(oldPath);
      // no fsync here: the path stays dirty and the next commit syncs it (one fsync per file per commit)
      await oldFd.close().catch(() => undefined);
    }
    return fd;
  }

  /** True while `local` still names the file `fd` was opened on (checked once per commit; see opened). */
  private async stillNamed(local: string, fd: fsp.FileHandle): Promise<boolean> {
    const id = this.opened.get(fd);
    if (!id || id.checkedAt === this.commits) return true;
    const st = await fsp.stat(local).catch(() => undefined);
    if (!st || st.ino !== id.ino || st.dev !== id.dev) return false;
    id.checkedAt = this.commits;
    return true;
  }

  private async ensureParent(local: string): Promise<void> {
    const dir = path.dirname(local);
    const made = await fsp.mkdir(dir, { recursive: true });
    if (made) this.markDirDirty(made);
    this.dirtyDirs.add(dir);
  }

  private markDirDirty(first: string): void {
    for (let d = first; d.startsWith(this.realRoot); d = path.dirname(d)) {
      this.dirtyDirs.add(path.dirname(d));
      if (d === this.realRoot) break;
    }
  }

  /**
   * Before `local` (a file, or a directory and all below it) is renamed (`keep`) or removed:
   * what was written there is fsync'd now, while its name still leads to it, and its
   * handles are closed, so no later op reaches a moved file through a handle kept
   * under its old name.
   */
  private async releaseUnder(local: string, keep: boolean): Promise<void> {
    const under = (p: string) => p === local || p.startsWith(local + path.sep);
    for (const p of [...this.dirtyFiles].filter(under)) {
      this.dirtyFiles.delete(p);
      if (keep) await this.track(this.syncFile(p));
    }
    for (const [p, fd] of [...this.open].filter(([p]) => under(p))) {
      this.open.delete(p);
      await fd.close().catch(() => undefined);
    }
  }

  /** fsyncs a file by path, through its open handle if it has one; a failure is final (syncError). */
  private async syncFile(local: string): Promise<void> {
    try {
      const fd = this.open.get(local);
      if (fd) return await fd.sync();
      const h = await fsp.open(local, 'r').catch(() => undefined); // gone (unlinked since): nothing to keep
      if (!h) return;
      try {
        await h.sync();
      } finally {
        await h.close();
      }
    } catch (err) {
      this.syncError ??= new KangarooError(
        KangarooError.from(err).code,
        `the destination's disk failed an fsync (${(err as Error).message}): data applied since the last good commit may not be on disk; restart the relay (the hop sending to it then sends those operations again)`,
        { cause: err },
      );
      throw this.syncError;
    }
  }

  private throwSyncError(): void {
    if (this.syncError) throw this.syncError;
  }

  /** Applies one ordered operation. Errors carry the code that says whether a retry can help. */
  async apply(op: OrderedOp): Promise<void> {
    try {
      await this.applyUnchecked(op);
    } catch (err) {
      throw KangarooError.from(err, `${op.type} ${op.path}`);
    }
  }

  private async applyUnchecked(op: OrderedOp): Promise<void> {
    // A put to a file with an open handle was checked when the handle was opened; the handle
    // is closed whenever its name is renamed or removed, so it still is that file (and saves
    // a realpath per put).
    const known = op.type === 'put' ? this.lexical(op.path) : undefined;
    const local = known !== undefined && this.open.has(known) ? known : await this.resolve(op.path);
    if (local === this.realRoot && op.type !== 'mkdir' && op.type !== 'setattr') {
      throw new KangarooError('IS_DIR', `cannot ${op.type} the export root`);
    }
    switch (op.type) {
      case 'put': {
        // end to end: the bytes must be those that entered the system
        if (!putIntact(op)) {
          throw new KangarooError('INTEGRITY', `data for ${op.path} at ${op.offset} does not match the checksum taken where it entered (corrupted on the way); not applied`);
        }
        const fd = await this.handle(local, true);
        let done = 0;
        while (done < op.data.length) {
          const { bytesWritten } = await fd.write(op.data, done, op.data.length - done, op.offset + done);
          done += bytesWritten;
        }
        this.dirtyFiles.add(local);
        return;
      }
      case 'truncate': {
        const fd = await this.handle(local, true);
        await fd.truncate(op.size);
        this.dirtyFiles.add(local);
        return;
      }
      case 'mkdir': {
        const made = await fsp.mkdir(local, { recursive: true, mode: op.mode & 0o1777 || 0o755 });
        if (made) this.markDirDirty(made);
        const st = await fsp.stat(local);
        if (!st.isDirectory()) throw new KangarooError('NOT_DIR', `${op.path} exists and is not a directory`);
        return;
      }
      case 'unlink': {
        await this.releaseUnder(local, false);
        try {
          await fsp.unlink(local);
          this.dirtyDirs.add(path.dirname(local));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        return;
      }
      case 'rmdir': {
        try {
          await fsp.rmdir(local);
          this.dirtyDirs.add(path.dirname(local));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        return;
      }
      case 'setattr': {
        // never set-user-id or set-group-id from the wire
        if (op.mode !== NO_MODE) await fsp.chmod(local, op.mode & 0o1777);
        if (op.mtimeMs > 0) {
          try {
            await fsp.utimes(local, new Date(), new Date(op.mtimeMs));
          } catch (err) {
            // A time alone describes contents: with the file gone (a consumer here moved it
            // away) there is nothing left to describe. Mounts send such a time with every
            // writer's close, so failing it would fail the close, or stop the path's delivery
            // at a hop, over a file nobody expects back; like unlink, it is then done.
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || op.mode !== NO_MODE) throw err;
          }
        }
        return;
      }
      case 'rename': {
        const target = await this.resolve(op.to);
        if (target === this.realRoot) throw new KangarooError('IS_DIR', 'cannot rename onto the export root');
        await this.releaseUnder(local, true);
        await this.releaseUnder(target, false);
        await this.ensureParent(target);
        try {
          await fsp.rename(local, target);
        } catch (err) {
          const gone = (err as NodeJS.ErrnoException).code === 'ENOENT';
          if (!gone || !(await exists(target))) throw err;
        }
        this.dirtyDirs.add(path.dirname(local));
        this.dirtyDirs.add(path.dirname(target));
        return;
      }
    }
  }

  /** fsyncs everything changed since the last commit. */
  async commit(): Promise<void> {
    this.throwSyncError();
    this.commits++;
    const files = [...this.dirtyFiles];
    this.dirtyFiles.clear();
    await this.synced(files.map((f) => this.syncFile(f)));
    await this.syncDirs();
  }

  /** fsyncs one file and the directories changed so far. */
  async push(remote: string): Promise<void> {
    this.throwSyncError();
    const local = await this.resolve(remote);
    await this.synced(this.dirtyFiles.delete(local) ? [this.syncFile(local)] : []);
    await this.syncDirs();
  }

  private async syncDirs(): Promise<void> {
    const dirs = [...this.dirtyDirs];
    this.dirtyDirs.clear();
    await this.synced([
      (async () => {
        for (const d of dirs) {
          const h = await fsp.open(d, 'r').catch(() => undefined);
          if (h) {
            await h.sync().catch(() => undefined);
            await h.close();
          }
        }
      })(),
    ]);
  }

  /** Keeps an fsync in `syncing` while it runs. */
  private track<T>(sync: Promise<T>): Promise<T> {
    this.syncing.add(sync);
    const settle = () => this.syncing.delete(sync);
    sync.then(settle, settle);
    return sync;
  }

  /**
   * Resolves once `own` (fsyncs of what the caller just took from the dirty sets) and
   * every fsync already running have finished. Those took files and directories the
   * caller found clean, which may hold writes made before it was called: a commit or
   * push answering before them would promise data not yet on stable storage. Call it
   * in the same turn as the taking, so nothing taken earlier is missed.
   */
  private async synced(own: Promise<unknown>[]): Promise<void> {
    const earlier = [...this.syncing];
    await Promise.all([...earlier, ...own.map((p) => this.track(p))]);
  }

  async read(remote: string, offset: number, length: number): Promise<Buffer> {
    const local = await this.resolve(remote);
    const fd = this.open.get(local);
    if (fd) {
      try {
        return await readFrom(fd, remote, offset, length);
      } catch (err) {
        // closed under the read by a rename or unlink on another connection (a closed
        // FileHandle reads fd -1): the name says what is there now
        if (fd.fd !== -1) throw err;
      }
    }
    const h = await fsp.open(local, 'r').catch((err) => {
      throw KangarooError.from(err, remote);
    });
    try {
      return await readFrom(h, remote, offset, length);
    } finally {
      await h.close();
    }
  }

  async stat(remote: string): Promise<FileInfo> {
    const local = await this.resolve(remote);
    try {
      return infoOf(await fsp.stat(local));
    } catch (err) {
      throw KangarooError.from(err, remote);
    }
  }

  async list(remote: string): Promise<DirEntry[]> {
    const local = await this.resolve(remote);
    let names: string[];
    try {
      names = await fsp.readdir(local);
    } catch (err) {
      throw KangarooError.from(err, remote);
    }
    const out: DirEntry[] = [];
    for (const name of names) {
      const st = await fsp.stat(path.join(local, name)).catch(() => undefined);
      if (st) out.push({ name, ...infoOf(st) });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.commit().catch(() => undefined);
    for (const fd of this.open.values()) await fd.close().catch(() => undefined);
    this.open.clear();
  }
}

export function infoOf(st: fs.Stats): FileInfo {
  return {
    kind: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other',
    size: st.isDirectory() ? 4096 : st.size,
    mtimeMs: st.mtimeMs,
    mode: st.mode & 0o7777,
  };
}

async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(
    () => true,
    () => false,
  );
}

async function readFrom(h: fsp.FileHandle, remote: string, offset: number, length: number): Promise<Buffer> {
  const st = await h.stat();
  if (st.isDirectory()) throw new KangarooError('IS_DIR', `${remote} is a directory`);
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await h.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

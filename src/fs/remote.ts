import { formatKangarooUrl, RemoteFile } from '../address.js';
import { KangarooError } from '../errors.js';
import { DirEntry, FileInfo } from '../protocol/messages.js';
import { once } from '../util/once.js';
import { BlockCache } from './block-cache.js';
import { RelayLink } from './relay-link.js';

/**
 * Remote files under the mount, mapped onto the Kangaroo calls:
 * write → put (small writes coalesced into large puts, bounded per handle),
 * read → get through the block cache, fsync → push, close → commit.
 *
 * Coalesced writes not yet sent are flushed before anything that must see
 * them (a read, a stat, a truncate or rename of the same file), so a program
 * always reads its own writes.
 */

const MAX_COALESCE = 1024 * 1024;

/**
 * Coalescing buffers, reused once the socket has handed them to the kernel. A fresh
 * 1 MiB buffer for every put cost more than the copy into it (memory the process has
 * not touched before is slow to fault in on this kind of VM: dd through a mount went
 * from 257-306 to 320-340 MB/s with reuse). At most POOLED wait here.
 */
const POOLED = 16;
const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafe(MAX_COALESCE);
}

function giveBack(b: Buffer): void {
  if (pool.length < POOLED) pool.push(b);
}

export class RemoteHandle {
  /** Coalescing buffer: writes are copied in once (fuse-native reuses its own) and sent as one put. */
  private pending: Buffer | undefined;
  private start = 0;
  private length = 0;
  /** Written since the last commit: close must commit. */
  dirty = false;
  /** Bytes written since the last commit. */
  private written = 0;

  constructor(
    /** The file's name now: a rename through the mount moves open handles with it (RemoteFiles.rename). */
    public file: RemoteFile,
    public key: string,
    private readonly files: RemoteFiles,
  ) {}

  get buffered(): number {
    return this.length;
  }

  get bufferedEnd(): number {
    return this.start + this.length;
  }

  private writing: Promise<void> = Promise.resolve();
  /** Puts handed to the relay in order, one after another; the first failure is kept for the next call. */
  private sending: Promise<void> = Promise.resolve();
  private sendError: unknown;

  /** Writes are taken one at a time per handle, so concurrent writes cannot interleave in the buffer. */
  write(data: Buffer, pos: number): Promise<void> {
    // fuse-native's buffer stays valid until this write is answered, which is after writeNow copied it
    const next = this.writing.then(() => this.writeNow(data, pos));
    this.writing = next.catch(() => undefined);
    return next;
  }

  /**
   * A block of writes the binding already answered (src/fs/write-behind.ts). Nobody waits
   * for it: a failure is kept and thrown by the next flush or fsync (close(2) and fsync(2)
   * report it), and `release` is called once the block's memory is no longer needed.
   */
  writeBehind(data: Buffer, pos: number, release: () => void): void {
    this.writing = this.writing
      .then(() => this.writeNow(data, pos, release))
      .catch((err: unknown) => {
        release();
        this.sendError ??= err;
      });
  }

  /** Blocks at least this big are sent as they are, without a copy into the coalescing buffer. */
  private static readonly SEND_OWNED = 256 * 1024;

  private async writeNow(data: Buffer, pos: number, release?: () => void): Promise<void> {
    this.throwSendError();
    const owned = release !== undefined && data.length >= RemoteHandle.SEND_OWNED;
    if (this.length > 0 && (owned || pos !== this.start + this.length || this.length + data.length > MAX_COALESCE)) this.queueBuffered();
    // at most one full buffer waits for the socket besides the one being filled: memory stays bounded
    await this.sending;
    this.throwSendError();
    this.dirty = true;
    this.written += data.length;
    this.files.changed(this.file);
    this.files.cache.invalidate(this.key);
    if (owned) {
      this.queue(pos, data, release);
      return;
    }
    if (data.length >= MAX_COALESCE) {
      // too big to coalesce: send a copy as it is (the socket may hold it past this call)
      this.queue(pos, Buffer.from(data));
      return;
    }
    if (this.length === 0) {
      this.start = pos;
      this.pending = takeBuffer();
    }
    data.copy(this.pending!, this.length);
    this.length += data.length;
    release?.();
    // sent once this write is answered: the program's next write then overlaps the checksum and socket copy
    if (this.length >= MAX_COALESCE) this.queueBuffered();
  }

  private throwSendError(): void {
    if (this.sendError === undefined) return;
    const err = this.sendError;
    this.sendError = undefined;
    throw err;
  }

  /**
   * Puts `data` at `at` after every put queued before it, on a later turn of the event
   * loop; `done` is called once the socket no longer needs `data` (sent, or never to be).
   */
  private queue(at: number, data: Buffer, whenSent?: () => void): void {
    // called from the socket's write callback, and again if the put then fails: only the first counts
    const done = whenSent && once(whenSent);
    this.sending = this.sending
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(async () => {
        const client = await this.files.link.get();
        this.files.link.wrote();
        if (done) await client.putOwned(this.file.host, this.file.path, at, data, done);
        else await client.put(this.file.host, this.file.path, at, data);
      })
      .catch((err: unknown) => {
        done?.();
        this.sendError ??= err;
      });
  }

  private queueBuffered(): void {
    if (this.length === 0) return;
    const buffer = this.pending!;
    const data = buffer.subarray(0, this.length);
    const at = this.start;
    this.pending = undefined;
    this.length = 0;
    this.queue(at, data, () => giveBack(buffer));
  }

  /** Hands buffered writes to the relay (waiting only for socket room); throws what sending them met. */
  async sendBuffered(): Promise<void> {
    // writes answered by the binding may still be on their way in
    await this.writing;
    this.queueBuffered();
    await this.sending;
    this.throwSendError();
  }

  /** close(2): everything written through this handle is safely spooled. Returns the bytes written since the last commit. */
  async commit(): Promise<number> {
    await this.sendBuffered();
    const written = this.written;
    this.written = 0;
    if (!this.dirty) return written;
    this.dirty = false;
    await this.files.stampTime(this.file);
    await this.files.link.commit();
    return written;
  }

  /** fsync(2): everything written so far has reached the destination. */
  async push(): Promise<void> {
    await this.sendBuffered();
    await this.files.stampTime(this.file);
    const client = await this.files.link.get();
    await client.push(this.file.host, this.file.path);
    this.dirty = false;
  }
}

export class RemoteFiles {
  private open = new Map<string, Set<RemoteHandle>>();
  private fetching = new Map<string, Promise<Buffer>>();
  /**
   * Files written or truncated since their modification time was last set. Until
   * delivery a file's time is that of its newest spooled change at the first hop;
   * after it, the destination's time of writing. Programs that stat a file twice
   * (tar: "file changed as we read it") and the kernel's page cache (auto_cache
   * drops a file's pages when its time changes) need it to stay put, so a commit
   * or push sets it explicitly, and the time travels with the data.
   */
  private unstamped = new Map<string, RemoteFile>();

  constructor(
    readonly link: RelayLink,
    readonly cache: BlockCache,
  ) {}

  static key(f: RemoteFile): string {
    return formatKangarooUrl(f);
  }

  handle(file: RemoteFile): RemoteHandle {
    const key = RemoteFiles.key(file);
    const h = new RemoteHandle(file, key, this);
    let set = this.open.get(key);
    if (!set) this.open.set(key, (set = new Set()));
    set.add(h);
    return h;
  }

  release(h: RemoteHandle): void {
    const set = this.open.get(h.key);
    set?.delete(h);
    if (set?.size === 0) this.open.delete(h.key);
  }

  /** Sends every handle's buffered writes to this file, so the relay's answer includes them. */
  async settle(file: RemoteFile): Promise<void> {
    const set = this.open.get(RemoteFiles.key(file));
    if (set) for (const h of set) await h.sendBuffered();
  }

  /** Size as far as this mount knows: the relay's view, extended by writes still buffered here. */
  async stat(file: RemoteFile): Promise<FileInfo> {
    await this.settle(file);
    const client = await this.link.get();
    try {
      const info = await client.stat(file.host, file.path);
      if (info.kind === 'file') this.cache.seen(RemoteFiles.key(file), info.size, info.mtimeMs);
      return info;
    } catch (err) {
      const e = KangarooError.from(err);
      // The relay cannot ask the host now. For the program this is a name that is not there (yet):
      // creating it works, and its writes wait in the spool until the host is back.
      if (e.code === 'UNREACHABLE' || e.code === 'TIMEOUT') throw new KangarooError('NOT_FOUND', `${file.host} cannot be reached now (${e.message})`);
      throw e;
    }
  }

  async list(dir: RemoteFile): Promise<DirEntry[]> {
    const client = await this.link.get();
    return client.list(dir.host, dir.path);
  }

  async read(file: RemoteFile, buf: Buffer, len: number, pos: number): Promise<number> {
    await this.settle(file);
    const key = RemoteFiles.key(file);
    const bs = this.cache.blockSize;
    let done = 0;
    while (done < len) {
      const at = pos + done;
      const block = Math.floor(at / bs);
      const data = await this.block(file, key, block);
      const within = at - block * bs;
      if (within >= data.length) break;
      const n = Math.min(len - done, data.length - within);
      data.copy(buf, done, within, within + n);
      done += n;
      if (data.length < bs) break; // end of file
    }
    return done;
  }

  private block(file: RemoteFile, key: string, block: number): Promise<Buffer> {
    const cached = this.cache.get(key, block);
    if (cached) return Promise.resolve(cached);
    const fkey = `${key}\0${block}`;
    let p = this.fetching.get(fkey);
    if (!p) {
      p = (async () => {
        const client = await this.link.get();
        const data = await client.get(file.host, file.path, block * this.cache.blockSize, this.cache.blockSize);
        this.cache.set(key, block, data);
        return data;
      })();
      this.fetching.set(fkey, p);
      void p.finally(() => this.fetching.delete(fkey)).catch(() => undefined);
    }
    return p;
  }

  private async ordered(files: RemoteFile[], op: (c: Awaited<ReturnType<RelayLink['get']>>) => Promise<void>): Promise<void> {
    for (const f of files) {
      await this.settle(f);
      this.cache.invalidate(RemoteFiles.key(f));
    }
    const client = await this.link.get();
    this.link.wrote();
    await op(client);
    // metadata operations answer the program now: wait for the relay to accept them
    await client.flush();
  }

  truncate(file: RemoteFile, size: number): Promise<void> {
    this.changed(file);
    return this.ordered([file], (c) => c.truncate(file.host, file.path, size));
  }

  /** The file's contents changed: its time is set at the next commit or push (see unstamped). */
  changed(file: RemoteFile): void {
    this.unstamped.set(RemoteFiles.key(file), file);
  }

  /**
   * What a rename of `from` to `to` does to names: every file at or under `from` moves
   * to the same place under `to` (handles open on it, and its pending time stamp).
   * Returns how to undo it, for a rename the relay then refuses.
   */
  private moveNames(from: RemoteFile, to: RemoteFile): () => void {
    const moved: { h: RemoteHandle; file: RemoteFile }[] = [];
    for (const set of [...this.open.values()]) {
      for (const h of set) {
        const dest = renamed(h.file, from, to);
        if (!dest) continue;
        moved.push({ h, file: h.file });
        this.rekey(h, dest);
      }
    }
    const replacedStamp = this.unstamped.get(RemoteFiles.key(to));
    this.unstamped.delete(RemoteFiles.key(to));
    const stamps: RemoteFile[] = [];
    for (const [key, file] of [...this.unstamped]) {
      const dest = renamed(file, from, to);
      if (!dest) continue;
      stamps.push(file);
      this.unstamped.delete(key);
      this.changed(dest);
    }
    return () => {
      for (const { h, file } of moved) this.rekey(h, file);
      for (const file of stamps) {
        this.unstamped.delete(RemoteFiles.key(renamed(file, from, to)!));
        this.changed(file);
      }
      if (replacedStamp) this.changed(replacedStamp);
    };
  }

  /** Files `h` under a new name: later writes through it go there. */
  private rekey(h: RemoteHandle, file: RemoteFile): void {
    this.release(h);
    this.cache.invalidate(h.key);
    h.file = file;
    h.key = RemoteFiles.key(file);
    this.cache.invalidate(h.key);
    let set = this.open.get(h.key);
    if (!set) this.open.set(h.key, (set = new Set()));
    set.add(h);
  }

  /**
   * Sets the time of a file changed since its time was last set to now (see unstamped).
   * Only queued: the commit or push that follows sends it in the same round trip and
   * reports a refusal.
   */
  async stampTime(file: RemoteFile): Promise<void> {
    if (!this.unstamped.delete(RemoteFiles.key(file))) return;
    // every handle's writes to the file go before it
    await this.settle(file);
    const client = await this.link.get();
    this.link.wrote();
    await client.setattr(file.host, file.path, { mtimeMs: Date.now() });
  }

  mkdir(dir: RemoteFile, mode: number): Promise<void> {
    return this.ordered([dir], (c) => c.mkdir(dir.host, dir.path, mode));
  }

  async unlink(file: RemoteFile): Promise<void> {
    const info = await this.stat(file);
    if (info.kind === 'dir') throw new KangarooError('IS_DIR', `${file.path} is a directory`);
    this.unstamped.delete(RemoteFiles.key(file));
    await this.ordered([file], (c) => c.unlink(file.host, file.path));
  }

  async rmdir(dir: RemoteFile): Promise<void> {
    const info = await this.stat(dir);
    if (info.kind !== 'dir') throw new KangarooError('NOT_DIR', `${dir.path} is not a directory`);
    if ((await this.list(dir)).length > 0) throw new KangarooError('NOT_EMPTY', `${dir.path} is not empty`);
    await this.ordered([dir], (c) => c.rmdir(dir.host, dir.path));
  }

  /**
   * Open handles follow the file, as on a local disk: a program still writing a file
   * another renamed (a log rotated, a file libfuse hides on unlink while open) goes on
   * writing it under its new name, rather than bringing the old name back. They move
   * when the rename is sent, so every later put follows it on the connection.
   */
  async rename(from: RemoteFile, to: RemoteFile): Promise<void> {
    if (from.host !== to.host) throw new KangarooError('BAD_ARGUMENT', 'rename across hosts');
    await this.stat(from);
    let undo: (() => void) | undefined;
    try {
      await this.ordered([from, to], (c) => {
        const sent = c.rename(from.host, from.path, to.path);
        undo = this.moveNames(from, to);
        return sent;
      });
    } catch (err) {
      undo?.();
      throw err;
    }
  }

  async setattr(file: RemoteFile, attrs: { mode?: number; mtimeMs?: number }): Promise<void> {
    // a program's own time (touch -d, tar and cp -p restoring one) is kept as it set it
    if (attrs.mtimeMs !== undefined) this.unstamped.delete(RemoteFiles.key(file));
    await this.ordered([file], (c) => c.setattr(file.host, file.path, attrs));
  }

  /** Every handle's buffered writes sent, times set and committed: what unmount needs. */
  async commitAll(): Promise<void> {
    for (const set of this.open.values()) for (const h of set) await h.sendBuffered();
    for (const file of [...this.unstamped.values()]) await this.stampTime(file);
    await this.link.commit();
  }
}

/** Where `file` is after a rename of `from` to `to`; undefined when the rename does not touch it. */
function renamed(file: RemoteFile, from: RemoteFile, to: RemoteFile): RemoteFile | undefined {
  if (file.host !== from.host) return undefined;
  if (file.path === from.path) return { ...file, path: to.path };
  if (file.path.startsWith(`${from.path}/`)) return { ...file, path: to.path + file.path.slice(from.path.length) };
  return undefined;
}

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { KangarooError } from '../errors.js';

/**
 * Appends to one journal segment with O_DIRECT, past the page cache.
 *
 * A spool writes every byte a program sends once, and reads it back only to send
 * it on. Through the page cache the write is a copy into pages the kernel must
 * first find and clear: on the virtual machines this runs on, that copy cost the
 * first hop 0.8-3 s of CPU per GiB (more than the rest of its work together), and
 * the commit's fsync then wrote the same bytes out again. A direct write hands the
 * buffer to the disk (1 GiB in about 0.2 s of CPU here), and the commit's fsync
 * has little left to do.
 *
 * Direct writes need offsets, lengths and memory aligned to the disk's block, so
 * records are copied into a page-aligned staging buffer (a WebAssembly memory: the
 * one page-aligned allocation Node offers) and written from it in whole 4 KiB
 * blocks. The last, partial block is padded with zeros and written again, completed,
 * by the next write. Closing cuts the padding off; a segment left by a crash may end
 * in fewer than 4 KiB of zeros after its last record, which the journal's reader
 * knows as padding (see isPadding).
 */
/**
 * Staging buffers of closed writers, for the next ones (a writer lives as long as its
 * segment). A WebAssembly memory reserves far more address space than it uses, and
 * a process may hold only so many, so they are reused rather than left to the GC.
 */
const spareStaging: Buffer[] = [];
const MAX_SPARE = 4;

export class DirectWriter {
  static readonly BLOCK = 4096;
  private static readonly CAPACITY = 4 << 20;
  /** Where staging[0] belongs in the file: a multiple of BLOCK. */
  private base = 0;
  /** Bytes in staging: those of the partial last block already on disk, then new ones. */
  private fill = 0;
  /** Of those, the partial last block's bytes already on disk. */
  private kept = 0;
  /** Bytes handed to the disk so far (none: a failure may still fall back to buffered writes). */
  written = 0;
  /** The write in progress: close waits for it, so the disk never reads a staging buffer another writer has. */
  private writing: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly fd: fsp.FileHandle,
    private readonly staging: Buffer,
  ) {}

  /**
   * Opens an empty segment for direct writes; undefined where the file system does not
   * take them (tmpfs, some FUSE file systems) or no staging memory can be had (a
   * process under `ulimit -v`), and the journal writes through the page cache.
   */
  static async open(file: string): Promise<DirectWriter | undefined> {
    let staging: Buffer;
    try {
      staging = spareStaging.pop() ?? Buffer.from(new WebAssembly.Memory({ initial: DirectWriter.CAPACITY / 65536 }).buffer);
    } catch {
      return undefined;
    }
    try {
      return new DirectWriter(await fsp.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_DIRECT, 0o644), staging);
    } catch (err) {
      spareStaging.push(staging);
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
      throw err;
    }
  }

  /** Appends `chunks` after everything written before; resolves once the disk has them. One write at a time. */
  write(chunks: Buffer[]): Promise<void> {
    if (this.closing) return Promise.reject(new KangarooError('CLOSED', 'spool segment writer is closed'));
    if (this.writing) return Promise.reject(new Error('DirectWriter.write called while a write is in progress'));
    const writing = this.copyAndWrite(chunks);
    this.writing = writing;
    const settle = () => {
      if (this.writing === writing) this.writing = undefined;
    };
    writing.then(settle, settle);
    return writing;
  }

  private async copyAndWrite(chunks: Buffer[]): Promise<void> {
    for (const c of chunks) {
      let at = 0;
      while (at < c.length) {
        const n = Math.min(c.length - at, DirectWriter.CAPACITY - this.fill);
        c.copy(this.staging, this.fill, at, at + n);
        this.fill += n;
        at += n;
        if (this.fill === DirectWriter.CAPACITY) await this.writeStaging();
      }
    }
    if (this.fill > this.kept) await this.writeStaging();
  }

  /** Writes staging out in whole blocks; keeps the partial last block for the next write. */
  private async writeStaging(): Promise<void> {
    const B = DirectWriter.BLOCK;
    const length = Math.ceil(this.fill / B) * B;
    this.staging.fill(0, this.fill, length);
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await this.fd.write(this.staging, done, length - done, this.base + done);
      if (bytesWritten <= 0 || bytesWritten % B !== 0) throw new KangarooError('IO', `short direct write to the spool (${bytesWritten} of ${length - done} bytes)`);
      done += bytesWritten;
      this.written += bytesWritten;
    }
    const partial = this.fill % B;
    const whole = this.fill - partial;
    if (partial > 0) this.staging.copy(this.staging, 0, whole, this.fill);
    this.base += whole;
    this.fill = partial;
    this.kept = partial;
  }

  /**
   * Closes the file, cut to its last record (the padding of a file left by a crash stays).
   * Waits for a write in progress; closing again returns the same promise. The staging
   * buffer goes back to the pool only once the file is closed and no write reads it.
   */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    await this.writing?.catch(() => undefined);
    try {
      if (this.written > 0) await this.fd.truncate(this.base + this.fill);
    } finally {
      try {
        await this.fd.close();
      } finally {
        if (spareStaging.length < MAX_SPARE) spareStaging.push(this.staging);
      }
    }
  }
}

/**
 * True when `data` from `pos` on is a direct writer's padding: fewer than BLOCK zero
 * bytes up to a file end on a block boundary (a crash can leave no other zeros there).
 */
export function isPadding(data: Buffer, pos: number): boolean {
  if (data.length - pos >= DirectWriter.BLOCK || data.length % DirectWriter.BLOCK !== 0) return false;
  for (let i = pos; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

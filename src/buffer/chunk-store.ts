import fsp from 'node:fs/promises';
import path from 'node:path';

/**
 * Where a grid buffer keeps its bytes: fixed-size chunks, in memory while the
 * buffer's memory budget lasts, then in files on the relay's disk (DiskRouter's
 * memory-then-disk). Chunks wholly below what every reader has consumed are freed.
 */
export const CHUNK_BYTES = 1024 * 1024;

type Chunk = { kind: 'memory'; data: Buffer } | { kind: 'disk'; file: fsp.FileHandle; path: string };

export class ChunkStore {
  private chunks = new Map<number, Chunk | Promise<Chunk>>();
  private memoryChunks = 0;
  private diskChunks = 0;
  private peakMemory = 0;

  constructor(
    private readonly dir: string,
    private readonly memoryBudget: number,
  ) {}

  get memoryBytes(): number {
    return this.memoryChunks * CHUNK_BYTES;
  }

  get diskBytes(): number {
    return this.diskChunks * CHUNK_BYTES;
  }

  get peakMemoryBytes(): number {
    return this.peakMemory;
  }

  private chunk(index: number): Promise<Chunk> | Chunk {
    let c = this.chunks.get(index);
    if (c) return c;
    if ((this.memoryChunks + 1) * CHUNK_BYTES <= this.memoryBudget) {
      this.memoryChunks++;
      this.peakMemory = Math.max(this.peakMemory, this.memoryBytes);
      c = { kind: 'memory', data: Buffer.alloc(CHUNK_BYTES) };
    } else {
      const p = path.join(this.dir, `chunk-${index}`);
      this.diskChunks++;
      c = fsp
        .mkdir(this.dir, { recursive: true })
        .then(() => fsp.open(p, 'w+'))
        .then((file) => {
          const d: Chunk = { kind: 'disk', file, path: p };
          this.chunks.set(index, d);
          return d;
        });
    }
    this.chunks.set(index, c);
    return c;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const index = Math.floor(at / CHUNK_BYTES);
      const within = at - index * CHUNK_BYTES;
      const n = Math.min(data.length - done, CHUNK_BYTES - within);
      const c = await this.chunk(index);
      if (c.kind === 'memory') data.copy(c.data, within, done, done + n);
      else await c.file.write(data, done, n, within);
      done += n;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / CHUNK_BYTES);
      const within = at - index * CHUNK_BYTES;
      const n = Math.min(length - done, CHUNK_BYTES - within);
      const c = await this.chunks.get(index);
      if (c?.kind === 'memory') c.data.copy(out, done, within, within + n);
      else if (c?.kind === 'disk') await c.file.read(out, done, n, within);
      done += n;
    }
    return out;
  }

  /** Frees every chunk that lies wholly below `offset`. */
  async freeBelow(offset: number): Promise<void> {
    const limit = Math.floor(offset / CHUNK_BYTES);
    for (const [index, entry] of [...this.chunks]) {
      if (index >= limit) continue;
      this.chunks.delete(index);
      const c = await entry;
      if (c.kind === 'memory') this.memoryChunks--;
      else {
        this.diskChunks--;
        await c.file.close().catch(() => undefined);
        await fsp.rm(c.path, { force: true });
      }
    }
  }

  async destroy(): Promise<void> {
    await this.freeBelow(Number.MAX_SAFE_INTEGER);
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

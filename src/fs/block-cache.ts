import { LRUCache } from 'lru-cache';

/**
 * The read cache of the mount: fixed-size blocks of remote files, bounded in
 * bytes (lru-cache). Any write through the mount to a file drops that file's
 * blocks, so a reader never sees bytes older than its own writes.
 */
export class BlockCache {
  readonly blockSize: number;
  private cache: LRUCache<string, Buffer>;
  private byFile = new Map<string, Set<string>>();

  constructor(maxBytes = 256 * 1024 * 1024, blockSize = 1024 * 1024) {
    this.blockSize = blockSize;
    this.cache = new LRUCache<string, Buffer>({
      maxSize: maxBytes,
      sizeCalculation: (b) => Math.max(1, b.length),
      dispose: (_v, key) => {
        const file = key.slice(0, key.lastIndexOf('\0'));
        this.byFile.get(file)?.delete(key);
      },
    });
  }

  private key(file: string, block: number): string {
    return `${file}\0${block}`;
  }

  get(file: string, block: number): Buffer | undefined {
    return this.cache.get(this.key(file, block));
  }

  set(file: string, block: number, data: Buffer): void {
    const key = this.key(file, block);
    this.cache.set(key, data);
    let keys = this.byFile.get(file);
    if (!keys) this.byFile.set(file, (keys = new Set()));
    keys.add(key);
  }

  invalidate(file: string): void {
    const keys = this.byFile.get(file);
    if (!keys) return;
    this.byFile.delete(file);
    for (const k of keys) this.cache.delete(k);
  }

  get bytes(): number {
    return this.cache.calculatedSize ?? 0;
  }
}

import { LRUCache } from 'lru-cache';

/**
 * The read cache of the mount: fixed-size blocks of remote files, bounded in
 * bytes (lru-cache). Any write through the mount to a file drops that file's
 * blocks, so a reader never sees bytes older than its own writes; and a stat that
 * finds the file at another size or time (changed elsewhere) drops them too, so
 * the next open reads the new bytes (as NFS's close-to-open consistency does).
 */
export class BlockCache {
  readonly blockSize: number;
  private cache: LRUCache<string, Buffer>;
  private byFile = new Map<string, Set<string>>();
  /** Size and modification time of each file as last seen by a stat. */
  private versions = new LRUCache<string, string>({ max: 10_000 });

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

  /** A stat saw `file` at this size and time: blocks cached under another are stale. */
  seen(file: string, size: number, mtimeMs: number): void {
    const version = `${size}:${mtimeMs}`;
    const before = this.versions.get(file);
    if (before !== undefined && before !== version) this.invalidate(file);
    this.versions.set(file, version);
  }

  invalidate(file: string): void {
    // what a stat saw before this mount's own change is no yardstick for what it caches next
    this.versions.delete(file);
    const keys = this.byFile.get(file);
    if (!keys) return;
    this.byFile.delete(file);
    for (const k of keys) this.cache.delete(k);
  }

  get bytes(): number {
    return this.cache.calculatedSize ?? 0;
  }
}

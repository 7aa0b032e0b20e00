import type Fuse from 'fuse-native';
import { once } from '../util/once.js';
import { bindingThread, KangarooBinding, loadBinding } from './binding.js';

/**
 * Write-behind in the patched binding (native/write-behind.c): writes to a handle
 * whose number has WRITE_BEHIND_BIT set are answered on the FUSE thread and arrive
 * here later, in blocks of up to 1 MiB, always before any other operation does.
 *
 * A block's memory belongs to the binding: `release` gives it back (after which the
 * Buffer is detached and reads as empty). The binding keeps at most 16 blocks, so a
 * block held forever would stop every writer: each block must be released exactly
 * once, whatever happens to its data.
 */

export const WRITE_BEHIND_BIT = 0x20000000;

/** Receives a block: the handle number as the binding holds it (WRITE_BEHIND_BIT set), the offset, the data, and its release. */
export type BlockSink = (fh: number, offset: number, data: Buffer, release: () => void) => void;

export class WriteBehind {
  private constructor(
    private readonly binding: KangarooBinding,
    private readonly thread: Buffer,
  ) {}

  /**
   * Turns write-behind on for a mounted `fuse`; undefined when the binding was not
   * rebuilt with it (scripts/build-native.cjs), and then every write is answered from
   * JavaScript as before.
   */
  static attach(fuse: Fuse, sink: BlockSink): WriteBehind | undefined {
    const binding = loadBinding();
    const thread = bindingThread(fuse);
    if (!binding?.kangaroo_wb_attach || !thread) return undefined;
    const wb = new WriteBehind(binding, thread);
    binding.kangaroo_wb_attach(thread, (list) => {
      for (let i = 0; i < list.length; i += 3) {
        const data = list[i + 2] as Buffer;
        sink(list[i] as number, list[i + 1] as number, data, once(() => binding.kangaroo_wb_release(thread, data)));
      }
    });
    return wb;
  }

  /** Hands every queued write to the sink now: before a commit or an unmount. */
  drain(): void {
    this.binding.kangaroo_wb_drain(this.thread);
  }
}

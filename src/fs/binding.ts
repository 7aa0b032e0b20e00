import type Fuse from 'fuse-native';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * What kangaroo adds to fuse-native's binding when scripts/build-native.cjs rebuilds it
 * (native/fuse-native-patches.cjs). A binding built without them lacks the functions.
 */
export interface KangarooBinding {
  /** native/write-behind.c */
  kangaroo_wb_attach?(thread: Buffer, callback: (list: (number | Buffer)[]) => void): void;
  kangaroo_wb_release(thread: Buffer, data: Buffer): void;
  kangaroo_wb_drain(thread: Buffer): void;
  /** native/big-writes.c: [requests, bytes, largest]; undefined when the mount kept libfuse's channel */
  kangaroo_write_requests?(thread: Buffer): [number, number, number] | undefined;
}

/** The largest write request a mount takes on the binding's channel (KBW_MAX_WRITE in native/big-writes.c). */
export const MAX_WRITE_REQUEST = 1024 * 1024;

let loaded: KangarooBinding | null | undefined;

export function loadBinding(): KangarooBinding | undefined {
  if (loaded === undefined) {
    try {
      const require = createRequire(import.meta.url);
      const dir = path.dirname(require.resolve('fuse-native/package.json'));
      // the same loader fuse-native uses, so this is the module instance it mounted with
      const gypBuild = require(require.resolve('node-gyp-build', { paths: [dir] })) as (d: string) => KangarooBinding;
      loaded = gypBuild(dir);
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

/** The binding's per-mount state, which its functions take; null before mounting. */
export function bindingThread(fuse: Fuse): Buffer | null {
  return (fuse as unknown as { _thread: Buffer | null })._thread;
}

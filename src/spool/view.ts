import { FileInfo, NO_MODE } from '../protocol/messages.js';
import { Spool, SpooledOp } from './spool.js';

/**
 * Read-your-writes: how a file looks once its undelivered ops are applied on top
 * of what the next hop holds. A view says which remote file supplies the bytes
 * below some limit (its "base") and which spooled puts and truncates lie on top.
 */
export interface FileView {
  /** Remote file whose bytes show through below `limit`; null when nothing does. */
  base: { path: string; limit: number; renames?: SpooledOp[] } | null;
  overlays: SpooledOp[];
  /** 'unknown': no spooled op decides it, ask the next hop. */
  state: 'file' | 'dir' | 'absent' | 'unknown';
  /** chmod and utimens not yet delivered (a later write sets the time again). */
  attrs: { mode?: number; mtimeMs?: number };
}

export function viewOf(spool: Spool, host: string, path: string, upTo = Number.MAX_SAFE_INTEGER): FileView {
  const v: FileView = { base: { path, limit: Number.MAX_SAFE_INTEGER }, overlays: [], state: 'unknown', attrs: {} };
  const file = spool.fileState(host, path);
  if (!file) return v;
  for (const sop of file.ops.values()) {
    if (sop.localSeq > upTo) break;
    const op = sop.op;
    switch (op.type) {
      case 'put':
        v.overlays.push(sop);
        v.state = 'file';
        v.attrs.mtimeMs = undefined;
        break;
      case 'setattr':
        if (op.mode !== NO_MODE) v.attrs.mode = op.mode;
        if (op.mtimeMs > 0) v.attrs.mtimeMs = op.mtimeMs;
        break;
      case 'truncate':
        v.attrs.mtimeMs = undefined;
        v.overlays.push(sop);
        if (v.base) v.base.limit = Math.min(v.base.limit, op.size);
        v.state = 'file';
        break;
      case 'mkdir':
        v.base = null;
        v.overlays = [];
        v.state = 'dir';
        break;
      case 'unlink':
      case 'rmdir':
        v.base = null;
        v.overlays = [];
        v.state = 'absent';
        break;
      case 'rename':
        if (op.to === path && op.path !== path) {
          const src = viewOf(spool, host, op.path, sop.localSeq - 1);
          // the renames on the way (one already sent may be applied at the next hop: see read-through)
          v.base = src.base ? { ...src.base, renames: [...(src.base.renames ?? []), sop] } : null;
          v.overlays = src.overlays;
          v.attrs = { ...src.attrs };
          v.state = src.state === 'absent' ? 'absent' : src.state;
        } else if (op.path === path && op.to !== path) {
          v.base = null;
          v.overlays = [];
          v.state = 'absent';
        }
        break;
    }
  }
  return v;
}

/** True when the view needs nothing from the next hop to answer a stat. */
export function isSelfContained(v: FileView): boolean {
  return v.base === null || v.base.limit === 0;
}

/**
 * The size a view gives, from the base's size (`baseSize`, already limited by
 * nothing: this applies the limit). A missing base counts as empty.
 */
export function viewSize(v: FileView, baseSize: number): number {
  let size = v.base ? Math.min(baseSize, v.base.limit) : 0;
  for (const sop of v.overlays) {
    const op = sop.op;
    if (op.type === 'truncate') size = op.size;
    else if (op.type === 'put' && sop.dataLength > 0) size = Math.max(size, op.offset + sop.dataLength);
  }
  return size;
}

/** Applies undelivered chmod and utimens to what the next hop said. */
export function withAttrs(v: FileView, info: FileInfo): FileInfo {
  return { ...info, mode: v.attrs.mode ?? info.mode, mtimeMs: v.attrs.mtimeMs ?? info.mtimeMs };
}

export function viewInfo(v: FileView, base: FileInfo | undefined): FileInfo {
  if (v.state === 'dir') return withAttrs(v, { kind: 'dir', size: 4096, mtimeMs: Date.now(), mode: 0o755 });
  const size = viewSize(v, base?.kind === 'file' ? base.size : 0);
  // the newest spooled change is the modification time: stable while nothing changes, so caches hold
  const last = v.overlays[v.overlays.length - 1];
  const mtimeMs = last ? last.acceptedAt : (base?.mtimeMs ?? Date.now());
  return withAttrs(v, { kind: 'file', size, mtimeMs, mode: base?.mode ?? 0o644 });
}

/**
 * Applies the overlays to a window [offset, offset+length) of the file, given the
 * base bytes read at `offset` (`baseBytes`, possibly short) and whether that read
 * reached the base's end. `loadData` fetches a spooled put's bytes.
 */
export async function applyOverlays(
  v: FileView,
  offset: number,
  length: number,
  baseBytes: Buffer,
  baseExactEnd: number | undefined,
  loadData: (sop: SpooledOp) => Promise<Buffer>,
): Promise<Buffer> {
  const out = Buffer.alloc(length);
  baseBytes.copy(out, 0, 0, Math.min(length, baseBytes.length));
  // size: exact when known, else a lower bound that already covers the window
  let size: number;
  let exact: boolean;
  if (!v.base) {
    size = 0;
    exact = true;
  } else if (baseExactEnd !== undefined) {
    size = Math.min(baseExactEnd, v.base.limit);
    exact = true;
  } else {
    size = offset + length;
    exact = false;
  }
  const end = offset + length;
  for (const sop of v.overlays) {
    const op = sop.op;
    if (op.type === 'truncate') {
      if (op.size < end) out.fill(0, Math.max(0, op.size - offset));
      size = op.size;
      exact = true;
    } else if (op.type === 'put' && sop.dataLength > 0) {
      const opEnd = op.offset + sop.dataLength;
      size = Math.max(size, opEnd);
      if (opEnd <= offset || op.offset >= end) continue;
      const data = await loadData(sop);
      const from = Math.max(op.offset, offset);
      const to = Math.min(opEnd, end);
      data.copy(out, from - offset, from - op.offset, to - op.offset);
    }
  }
  if (!exact) return out;
  return out.subarray(0, Math.max(0, Math.min(length, size - offset)));
}

import path from 'node:path';
import { KangarooError } from '../errors.js';
import { Logger } from '../util/log.js';
import { BufferLimits, DEFAULT_BUFFER_LIMITS, GridBuffer } from './grid-buffer.js';

/**
 * The grid buffers a relay hosts, by name, and the handles opened on them. A
 * handle belongs to an owner (the connection that opened it): when the owner
 * goes away without closing, its handles are abandoned, which a writer's
 * buffer treats as "writer vanished" (grace period), not as end of file.
 */

export type Role = 'read' | 'write';

interface Handle {
  buffer: GridBuffer;
  role: Role;
  owner: object;
}

export class BufferRegistry {
  private buffers = new Map<string, GridBuffer>();
  private handles = new Map<number, Handle>();
  private nextHandle = 1;
  private sweeper: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    readonly limits: BufferLimits = DEFAULT_BUFFER_LIMITS,
    private readonly log: Logger,
    private readonly maxBuffers = 256,
  ) {
    this.sweeper = setInterval(() => void this.sweep(), 1000);
    this.sweeper.unref();
  }

  private bufferFor(name: string): GridBuffer {
    let b = this.buffers.get(name);
    if (!b) {
      if (this.buffers.size >= this.maxBuffers) {
        throw new KangarooError('LIMIT', `this relay already hosts ${this.maxBuffers} buffers (its limit); try again later`);
      }
      const safe = Buffer.from(name).toString('hex').slice(0, 200);
      b = new GridBuffer(name, path.join(this.dir, safe), this.limits, (m) => this.log.warn(m));
      this.buffers.set(name, b);
    }
    return b;
  }

  open(name: string, role: Role, owner: object): { handle: number; size: number } {
    if (!name || name.length > 1024 || name.includes('\0')) throw new KangarooError('BAD_PATH', 'bad buffer name');
    const buffer = this.bufferFor(name);
    const handle = this.nextHandle++;
    if (role === 'write') buffer.attachWriter(handle);
    else buffer.attachReader(handle);
    this.handles.set(handle, { buffer, role, owner });
    return { handle, size: buffer.size };
  }

  private get(handle: number, owner: object, role?: Role): Handle {
    const h = this.handles.get(handle);
    if (!h || h.owner !== owner) throw new KangarooError('BAD_ARGUMENT', `no open buffer handle ${handle} on this connection`);
    if (role && h.role !== role) throw new KangarooError('BAD_ARGUMENT', `buffer handle ${handle} is open for ${h.role}ing`);
    return h;
  }

  write(handle: number, owner: object, offset: number, data: Buffer): Promise<void> {
    return this.get(handle, owner, 'write').buffer.write(offset, data);
  }

  read(handle: number, owner: object, offset: number, length: number): Promise<Buffer> {
    return this.get(handle, owner, 'read').buffer.read(handle, offset, length);
  }

  closeHandle(handle: number, owner: object, abandoned = false): void {
    const h = this.get(handle, owner);
    this.handles.delete(handle);
    h.buffer.detach(handle, abandoned);
    void this.sweep();
  }

  /** The owner's connection is gone: every handle it held is abandoned. */
  ownerGone(owner: object): void {
    for (const [id, h] of [...this.handles]) if (h.owner === owner) this.closeHandle(id, owner, true);
  }

  stat(name: string): { exists: boolean; size: number; writer: string } {
    const b = this.buffers.get(name);
    return b ? { exists: true, size: b.size, writer: b.writerState } : { exists: false, size: 0, writer: 'none' };
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [name, b] of [...this.buffers]) {
      if (!b.droppable(now)) continue;
      const stillOpen = [...this.handles.values()].some((h) => h.buffer === b);
      if (stillOpen && now - b.lastActivity <= this.limits.idleMs) continue;
      this.buffers.delete(name);
      for (const [id, h] of [...this.handles]) if (h.buffer === b) this.handles.delete(id);
      b.fail(new KangarooError('IO', `buffer ${name} was dropped after ${Math.round(this.limits.idleMs / 1000)} s without activity`));
      await b.destroy().catch(() => undefined);
    }
  }

  status() {
    return [...this.buffers.values()].map((b) => b.describe());
  }

  async shutdown(): Promise<void> {
    clearInterval(this.sweeper);
    for (const b of this.buffers.values()) {
      b.fail(new KangarooError('CLOSED', 'relay is shutting down'));
      await b.destroy().catch(() => undefined);
    }
    this.buffers.clear();
  }
}

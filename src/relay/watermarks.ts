import fsp from 'node:fs/promises';

/**
 * Resend filter for the destination role: the highest op seq applied per
 * client id, saved (atomically, after the data is fsync'd) at every commit, so
 * an upstream mover that resends after a lost acknowledgement or a crash does
 * not apply anything twice.
 */
export class Watermarks {
  private marks = new Map<string, number>();
  private dirty = false;

  constructor(private readonly file: string) {}

  async load(): Promise<void> {
    try {
      const data = JSON.parse(await fsp.readFile(this.file, 'utf8')) as Record<string, number>;
      for (const [k, v] of Object.entries(data)) if (typeof v === 'number') this.marks.set(k, v);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  get(clientId: string): number {
    return this.marks.get(clientId) ?? 0;
  }

  raise(clientId: string, seq: number): void {
    if (this.get(clientId) < seq) {
      this.marks.set(clientId, seq);
      this.dirty = true;
    }
  }

  private saving: Promise<void> = Promise.resolve();

  /** Saves atomically; concurrent callers are serialized (each sees its marks on disk). */
  /** The marks as they are now: take this before fsyncing the data they stand for. */
  snapshot(): Map<string, number> {
    return new Map(this.marks);
  }

  save(snapshot: Map<string, number> = this.snapshot()): Promise<void> {
    const next = this.saving.then(() => this.write(snapshot));
    this.saving = next.catch(() => undefined);
    return next;
  }

  private async write(marks: Map<string, number>): Promise<void> {
    if (!this.dirty) return;
    const tmp = `${this.file}.tmp`;
    const h = await fsp.open(tmp, 'w');
    try {
      await h.writeFile(JSON.stringify(Object.fromEntries(marks)));
      await h.sync();
    } finally {
      await h.close();
    }
    await fsp.rename(tmp, this.file);
    if (marks.size === this.marks.size && [...marks].every(([k, v]) => this.marks.get(k) === v)) this.dirty = false;
  }
}

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

  async save(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const tmp = `${this.file}.tmp`;
    const h = await fsp.open(tmp, 'w');
    try {
      await h.writeFile(JSON.stringify(Object.fromEntries(this.marks)));
      await h.sync();
    } finally {
      await h.close();
    }
    await fsp.rename(tmp, this.file);
  }
}

/**
 * The byte ranges written so far, as sorted, merged, non-overlapping [start, end)
 * pairs. A grid buffer's writer may write anywhere; a reader needs to know how
 * much is there, contiguously, from where it reads.
 */
export class Extents {
  private ranges: [number, number][] = [];

  add(start: number, end: number): void {
    if (end <= start) return;
    const out: [number, number][] = [];
    let s = start;
    let e = end;
    let placed = false;
    for (const r of this.ranges) {
      if (r[1] < s) {
        out.push(r);
      } else if (r[0] > e) {
        if (!placed) {
          out.push([s, e]);
          placed = true;
        }
        out.push(r);
      } else {
        s = Math.min(s, r[0]);
        e = Math.max(e, r[1]);
      }
    }
    if (!placed) out.push([s, e]);
    this.ranges = out;
  }

  /** Bytes present contiguously from `offset` (0 if `offset` itself is missing). */
  contiguousFrom(offset: number): number {
    for (const [s, e] of this.ranges) {
      if (s <= offset && offset < e) return e - offset;
      if (s > offset) break;
    }
    return 0;
  }

  /** Where the next written range after `offset` starts (the end if none). */
  nextStart(offset: number): number {
    for (const [s] of this.ranges) if (s > offset) return s;
    return this.end;
  }

  /** Forgets everything below `offset` (consumed and dropped). */
  dropBelow(offset: number): void {
    this.ranges = this.ranges.filter((r) => r[1] > offset).map((r) => [Math.max(r[0], offset), r[1]] as [number, number]);
  }

  get end(): number {
    return this.ranges.length ? this.ranges[this.ranges.length - 1]![1] : 0;
  }

  get count(): number {
    return this.ranges.length;
  }
}

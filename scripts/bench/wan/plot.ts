import { OverlapPoint } from './overlap.js';

/**
 * Overlap turnaround against link rate as a hand-written SVG (no plotting
 * dependency): one line per approach, and the max(CPU, transfer) floor dashed.
 * Log scale on the rate axis, as the rates double from point to point.
 */

const COLORS: Record<string, string> = { sshfs: '#d62728', rclone: '#ff7f0e', staging: '#7f7f7f', kangaroo: '#1f77b4', floor: '#000000' };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function turnaroundSvg(points: OverlapPoint[], title: string, labels: Record<string, string>): string {
  const W = 800;
  const H = 440;
  const m = { l: 70, r: 250, t: 40, b: 55 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const rates = points.map((p) => p.rateMBps);
  const lo = Math.log(Math.min(...rates));
  const hi = Math.log(Math.max(...rates));
  const x = (r: number) => m.l + (hi === lo ? pw / 2 : ((Math.log(r) - lo) / (hi - lo)) * pw);
  const keys = [...new Set(points.flatMap((p) => p.trials.map((t) => t.approach)))];
  const values = points.flatMap((p) => [p.floorMs, ...p.trials.map((t) => t.turnaroundMs ?? 0)]);
  const ymax = niceCeil(Math.max(...values) / 1000);
  const y = (s: number) => m.t + ph - (s / ymax) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.l}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // axes and grid
  for (let i = 0; i <= 5; i++) {
    const v = (ymax * i) / 5;
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${m.l - 8}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  for (const r of rates) {
    out.push(`<line x1="${x(r).toFixed(1)}" x2="${x(r).toFixed(1)}" y1="${m.t}" y2="${m.t + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x(r).toFixed(1)}" y="${m.t + ph + 18}" text-anchor="middle">${fmt(r)}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">link rate, MB/s (nominal, log scale)</text>`);
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">turnaround, s</text>`);
  const line = (pts: [number, number][], color: string, dashed: boolean) => {
    const d = pts.map(([r, s], i) => `${i === 0 ? 'M' : 'L'}${x(r).toFixed(1)},${y(s).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (!dashed) for (const [r, s] of pts) out.push(`<circle cx="${x(r).toFixed(1)}" cy="${y(s).toFixed(1)}" r="3.5" fill="${color}"/>`);
  };
  line(points.map((p) => [p.rateMBps, p.floorMs / 1000]), COLORS.floor!, true);
  for (const k of keys) {
    // a run that never completed has no turnaround: its line is broken there
    const pts = points.flatMap((p) => {
      const t = p.trials.find((tr) => tr.approach === k);
      return t && t.turnaroundMs !== null ? [[p.rateMBps, t.turnaroundMs / 1000] as [number, number]] : [];
    });
    line(pts, COLORS[k] ?? '#2ca02c', false);
  }
  // legend
  const legend = [...keys.map((k) => [k, labels[k] ?? k] as const), ['floor', 'max(CPU, transfer)'] as const];
  legend.forEach(([k, text], i) => {
    const ly = m.t + 10 + i * 22;
    const lx = m.l + pw + 16;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${COLORS[k] ?? '#2ca02c'}" stroke-width="2"${k === 'floor' ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(text)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 2.5, 5, 10]) if (v <= f * p) return f * p;
  return 10 * p;
}

import fs from 'node:fs';
import path from 'node:path';

/**
 * The relays run from dist/ (as a user runs them), which `npm run bench` does not
 * build. Refuse to measure a missing or stale build: a dist/**.js older than its
 * src/**.ts. (A source with no output yet is new and not imported by this build,
 * or an importer of it would be stale too; it does not stop the benchmark.)
 */
export function checkBuild(root: string): string {
  const cli = path.join(root, 'dist', 'cli', 'main.js');
  if (!fs.existsSync(cli)) throw new Error(`${path.relative(root, cli)} is missing: run "npm run build" first`);
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const out = path.join(root, 'dist', path.relative(path.join(root, 'src'), p)).replace(/\.ts$/, '.js');
        if (fs.existsSync(out) && fs.statSync(out).mtimeMs < fs.statSync(p).mtimeMs) stale.push(path.relative(root, p));
      }
    }
  };
  walk(path.join(root, 'src'));
  if (stale.length > 0) {
    const list = stale.slice(0, 5).join(', ') + (stale.length > 5 ? ` and ${stale.length - 5} more` : '');
    throw new Error(`dist/ is older than src/ (${list}): run "npm run build" first`);
  }
  return cli;
}

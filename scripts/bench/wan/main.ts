import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBench } from '../entry.js';
import { interrupted } from '../resources.js';
import { runWan } from './wan.js';

/** `npm run bench:wan`: the wide-area comparison alone (same options as `npm run bench`). */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../../..'); // dist-bench/scripts/bench/wan -> project root

async function main(): Promise<void> {
  const started = startBench(root);
  if (!started) return;
  await runWan(started.config, started.cli, root, (t) => process.stderr.write(t));
}

main().catch((err: unknown) => {
  if (interrupted()) return;
  process.stderr.write(`\nwide-area comparison failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

import { checkBuild } from './build-check.js';
import { BenchConfig, parseConfig, USAGE } from './config.js';
import { installExitHandlers } from './resources.js';

/**
 * What both benchmark entry points do first: read the options (printing the usage
 * and returning undefined when only help was asked for), find the built command,
 * and make sure an interrupt still cleans up.
 */
export function startBench(root: string): { config: BenchConfig; cli: string } | undefined {
  const config = parseConfig(process.argv.slice(2));
  if (!config) {
    process.stdout.write(USAGE + '\n');
    return undefined;
  }
  const cli = checkBuild(root);
  installExitHandlers();
  return { config, cli };
}

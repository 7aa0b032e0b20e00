import type { Argv } from 'yargs';
import { formatEntry } from '../../gns/format.js';
import { gnsList, gnsRemove, gnsSet } from '../../gns/editor.js';
import { KangarooError } from '../../errors.js';

/** gns check|set|rm|ls: the name service file from scripts (edits are atomic). */
export function register(y: Argv): Argv {
  const file = (c: Argv) => c.option('file', { alias: 'f', type: 'string', default: process.env.KANGAROO_GNS ?? 'kangaroo.gns', describe: 'name service file (default: $KANGAROO_GNS, else ./kangaroo.gns)' });
  return y.command('gns', 'Read and edit a name service file (NAME MODE TARGET lines)', (g) =>
    g
      .command(
        'check [path]',
        'Report malformed lines with their numbers',
        (c) => file(c).positional('path', { type: 'string' }),
        async (argv) => {
          const f = (argv.path as string | undefined) ?? (argv.file as string);
          const { entries, problems } = await gnsList(f);
          for (const p of problems) process.stderr.write(`${f}:${p.line}: ${p.message}\n`);
          process.stdout.write(`${f}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${problems.length} problem(s)\n`);
          if (problems.length > 0) process.exitCode = 1;
        },
      )
      .command(
        'set <name> <mode> <target>',
        'Map NAME (local PATH | remote kangaroo://HOST/PATH | buffer buffer://HOST/NAME); replaces an earlier mapping',
        (c) =>
          file(c)
            .positional('name', { type: 'string', demandOption: true })
            .positional('mode', { type: 'string', demandOption: true })
            .positional('target', { type: 'string', demandOption: true }),
        async (argv) => {
          const e = await gnsSet(argv.file as string, argv.name, argv.mode, argv.target);
          process.stdout.write(formatEntry(e) + '\n');
        },
      )
      .command(
        'rm <name>',
        'Remove the mapping of NAME',
        (c) => file(c).positional('name', { type: 'string', demandOption: true }),
        async (argv) => {
          if (!(await gnsRemove(argv.file as string, argv.name))) throw new KangarooError('NOT_FOUND', `${argv.name} is not mapped in ${argv.file}`);
        },
      )
      .command(
        'ls',
        'List the mappings',
        (c) => file(c),
        async (argv) => {
          const { entries, problems } = await gnsList(argv.file as string);
          for (const e of entries) process.stdout.write(formatEntry(e) + '\n');
          for (const p of problems) process.stderr.write(`${argv.file}:${p.line}: ${p.message}\n`);
        },
      )
      .demandCommand(1, 'Name a gns command: check, set, rm or ls.'),
  );
}

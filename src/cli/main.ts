#!/usr/bin/env node
import yargs, { Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { register as registerDemo } from './commands/demo.js';
import { register as registerGns } from './commands/gns.js';
import { register as registerMount } from './commands/mount.js';
import { register as registerRelay } from './commands/relay.js';
import { register as registerRun } from './commands/run.js';
import { register as registerStatus } from './commands/status.js';
import { register as registerTransfer } from './commands/transfer.js';
import { protectStdioArgs } from './defaults.js';
import { reportError } from './run.js';

/** A command line yargs refused (unknown command, missing argument): exit status 2. */
class UsageError extends Error {}

/** The `kangaroo` command: thin wrappers over the library, one module per group of commands. */
const base = yargs(protectStdioArgs(hideBin(process.argv)))
  .scriptName('kangaroo')
  .usage('$0 <command> [options]\n\nMove files across slow, unreliable networks through a chain of spooling relays.')
  .option('relay', {
    type: 'string',
    global: true,
    describe: 'relay to talk to (default: $KANGAROO_RELAY, else 127.0.0.1:9094)',
  })
  .option('secret-file', {
    type: 'string',
    global: true,
    describe: 'shared secret for relays that require one (default: $KANGAROO_SECRET_FILE)',
  });
let cli = base as unknown as Argv;
for (const register of [registerRelay, registerTransfer, registerStatus, registerMount, registerRun, registerGns, registerDemo]) cli = register(cli);

cli
  .demandCommand(1, 'Name a command.')
  .strict()
  .recommendCommands()
  .fail((msg, err) => {
    // thrown either way, so yargs stops here (it would otherwise run the command after a
    // usage error) and the error is reported once, below
    throw err ?? new UsageError(msg);
  })
  .help()
  .alias('h', 'help')
  .version()
  .wrap(Math.min(110, base.terminalWidth()));

// yargs throws a usage error before parseAsync returns its promise, and rejects that promise
// with a failing command's error: the chain catches both
Promise.resolve()
  .then(() => cli.parseAsync())
  .catch((err: unknown) => {
    if (!(err instanceof UsageError)) return reportError(err);
    // yargs' suggestion for a mistyped command does not say what was wrong
    const what = err.message.startsWith('Did you mean') ? `unknown command ${hideBin(process.argv)[0]}. ` : '';
    process.stderr.write(`kangaroo: ${what}${err.message}\n(see kangaroo --help)\n`);
    process.exitCode = 2;
  });

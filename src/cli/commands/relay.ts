import type { Argv } from 'yargs';
import { Relay } from '../../relay/relay.js';
import { createLogger, LogLevel } from '../../util/log.js';
import { formatBytes, parseBytes } from '../../util/units.js';
import { defaultSpoolDir } from '../defaults.js';

export function register(y: Argv): Argv {
  return y.command(
    'relay',
    'Run a relay daemon: spool writes to disk and move them on toward their destination',
    (c) =>
      c
    .option('listen', { type: 'string', default: '127.0.0.1:9094', describe: 'address to listen on (port 0: any free port)' })
    .option('name', { type: 'string', describe: 'host name this relay answers to (default: its listen address)' })
    .option('spool', { type: 'string', default: defaultSpoolDir(), describe: 'spool directory' })
    .option('export', { type: 'string', describe: 'serve files under DIR for requests naming this relay (destination role)' })
    .option('route', { type: 'string', array: true, default: [] as string[], describe: 'NAME=HOST:PORT: reach NAME through that relay (NAME may be *); repeatable' })
    .option('bwlimit', { type: 'string', describe: 'cap the bytes per second this relay sends on (e.g. 10MB)' })
    .option('max-spool-bytes', { type: 'string', default: '10GiB', describe: 'spool size at which writers are made to wait' })
    .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const })
    .option('ready-file', { type: 'string', describe: 'write the listen address to this file once ready (for scripts)' })
    .example('$0 relay --export /data --listen 0.0.0.0:9094', 'a destination relay')
    .example('$0 relay --route far.example=gateway:9094 --bwlimit 10MB', 'a first hop that reaches far.example through a gateway'),
    async (argv) => {
  const log = createLogger('relay', argv['log-level'] as LogLevel);
  const relay = await Relay.start({
    listen: argv.listen,
    name: argv.name,
    spoolDir: argv.spool,
    exportDir: argv.export,
    routes: argv.route,
    bwlimit: argv.bwlimit ? parseBytes(argv.bwlimit) : undefined,
    maxSpoolBytes: parseBytes(argv['max-spool-bytes']),
    log,
  });
  log.info(
    `relay ${relay.name} listening on ${relay.address}; spool ${argv.spool} (max ${formatBytes(parseBytes(argv['max-spool-bytes']))})` +
      (argv.export ? `; export ${argv.export}` : '') +
      (argv.bwlimit ? `; bwlimit ${argv.bwlimit}/s` : ''),
  );
  if (argv['ready-file']) {
    const fs = await import('node:fs/promises');
    await fs.writeFile(argv['ready-file'], relay.address + '\n');
  }
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: closing (undelivered data stays in the spool and is sent at the next start)`);
    void relay.close().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
  );
}

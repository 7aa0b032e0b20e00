import type { Argv } from 'yargs';
import { createLogger, LogLevel } from '../../util/log.js';
import { tuneMalloc } from '../../util/malloc-tuning.js';
import { formatBytes, parseBytes, parseDuration } from '../../util/units.js';
import { readSecretFile } from '../../relay/access.js';
import { defaultSpoolDir } from '../defaults.js';
import { writeReadyFile } from '../run.js';

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
    .option('buffer-memory', { type: 'string', default: '16MiB', describe: 'pipe mode: memory per grid buffer before it spills to disk' })
    .option('buffer-budget', { type: 'string', default: '1GiB', describe: 'pipe mode: bytes a buffer holds ahead of its slowest reader before the writer waits' })
    .option('buffer-grace', { type: 'string', default: '30s', describe: 'pipe mode: how long readers wait for a writer that vanished without closing' })
    .option('buffer-wait', { type: 'string', default: '120s', describe: 'pipe mode: how long a reader waits for a first writer' })
    .option('buffer-idle', { type: 'string', default: '10m', describe: 'pipe mode: drop a buffer untouched this long' })
    .option('max-buffers', { type: 'number', default: 256, describe: 'pipe mode: buffers this relay hosts at once' })
    .option('retry', { type: 'string', array: true, default: [] as string[], describe: 'NAME=initial=1s,max=5m[,deadline=2h][,pause=02:00-03:00]: retry policy for a next hop (NAME may be *); repeatable' })
    .option('hang-floor-rate', { type: 'string', default: '1MB', describe: 'rate assumed for hung-transfer detection until a route has history' })
    .option('hang-allowance', { type: 'string', default: '10s', describe: 'time a transfer may make no progress on top of what its size needs' })
    .option('secret-file', { type: 'string', describe: 'require clients to prove this shared secret (challenge-response); also proven to next hops' })
    .option('allow', { type: 'string', array: true, default: [] as string[], describe: 'CIDR allowed to connect (repeatable); add 127.0.0.1/32 for this machine\'s own clients' })
    .option('max-connections', { type: 'number', default: 1024, describe: 'client connections at once; more are refused with a clear error' })
    .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const })
    .option('ready-file', { type: 'string', describe: 'write the listen address to this file once ready (for scripts)' })
    .option('exit-when-done', {
      type: 'boolean',
      default: false,
      describe: "exit once every write it accepted is delivered and no client is connected (how a mount's background relay ends)",
    })
    .example('$0 relay --export /data --listen 0.0.0.0:9094', 'a destination relay')
    .example('$0 relay --route far.example=gateway:9094 --bwlimit 10MB', 'a first hop that reaches far.example through a gateway'),
    async (argv) => {
  const log = createLogger('relay', argv['log-level'] as LogLevel);
  log.debug(tuneMalloc());
  // loaded here: every other command (put, status, ...) starts faster without the relay's modules
  const { Relay } = await import('../../relay/relay.js');
  const relay = await Relay.start({
    listen: argv.listen,
    name: argv.name,
    spoolDir: argv.spool,
    exportDir: argv.export,
    routes: argv.route,
    bwlimit: argv.bwlimit ? parseBytes(argv.bwlimit) : undefined,
    maxSpoolBytes: parseBytes(argv['max-spool-bytes']),
    buffers: {
      memoryBytes: parseBytes(argv['buffer-memory']),
      budgetBytes: parseBytes(argv['buffer-budget']),
      writerGraceMs: parseDuration(argv['buffer-grace']),
      noWriterWaitMs: parseDuration(argv['buffer-wait']),
      idleMs: parseDuration(argv['buffer-idle']),
    },
    maxBuffers: argv['max-buffers'],
    secret: argv['secret-file'] ? readSecretFile(argv['secret-file']) : undefined,
    allow: argv.allow,
    maxConnections: argv['max-connections'],
    retry: argv.retry,
    hang: { floorBytesPerSecond: parseBytes(argv['hang-floor-rate']), baseMs: parseDuration(argv['hang-allowance']) },
    log,
  });
  log.info(
    `relay ${relay.name} listening on ${relay.address}; spool ${argv.spool} (max ${formatBytes(parseBytes(argv['max-spool-bytes']))})` +
      (argv.export ? `; export ${argv.export}` : '') +
      (argv.bwlimit ? `; bwlimit ${argv.bwlimit}/s` : ''),
  );
  if (argv['ready-file']) await writeReadyFile(argv['ready-file'], relay.address);
  let stopping = false;
  const stop = (sig: string, why = 'closing (undelivered data stays in the spool and is sent at the next start)') => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: ${why}`);
    void relay.close().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (argv['exit-when-done']) {
    // a relay started to finish someone else's job ends with it; a client still connected
    // (a mount that found it at its address, a status watcher) may bring more work; a file
    // blocked by a permanent failure keeps it running, and listed in its status
    const timer = setInterval(() => {
      const s = relay.status();
      if (s.spool.pendingOps > 0 || s.files.length > 0 || s.connections > 0 || s.buffers.length > 0) return;
      clearInterval(timer);
      stop('done', 'every write it accepted is delivered and no client is connected: exiting');
    }, DONE_CHECK_MS);
  }
}
  );
}

/** How often a relay started with --exit-when-done looks whether its job is done. */
const DONE_CHECK_MS = 1000;

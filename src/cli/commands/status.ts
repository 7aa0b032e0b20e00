import type { Argv } from 'yargs';
import { parseKangarooUrl, canonicalHost } from '../../address.js';
import { FailureRecord } from '../../mover/failure-log.js';
import { RelayStatus } from '../../relay/status.js';
import { formatBytes } from '../../util/units.js';
import { withClient } from '../run.js';

/** status and retry: what a relay holds, and re-queuing what a permanent error stopped. */
export function register(y: Argv): Argv {
  return y
    .command(
      'status',
      'Show what the relay holds: spool use, movers, and every file not yet delivered',
      (c) => c.option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
      async (argv) => {
        await withClient(argv, async (client) => {
          const s = (await client.status()) as RelayStatus;
          process.stdout.write(argv.json ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s));
        });
      },
    )
    .command(
      'log',
      'List the relay\'s failure log: every failure, its class, the action taken and the outcome',
      (c) =>
        c
          .option('json', { type: 'boolean', default: false, describe: 'one JSON array' })
          .option('limit', { type: 'number', default: 100, describe: 'newest N records' }),
      async (argv) => {
        await withClient(argv, async (client) => {
          const records = (await client.failureLog(argv.limit)) as FailureRecord[];
          if (argv.json) {
            process.stdout.write(JSON.stringify(records, null, 2) + '\n');
            return;
          }
          if (records.length === 0) {
            process.stdout.write('no failures recorded\n');
            return;
          }
          process.stdout.write(
            table([
              ['WHEN', 'KIND', 'TARGET', 'CLASS', 'CODE', 'ACTION', 'MESSAGE'],
              ...records.map((r) => [r.at, r.kind, r.target, r.class, r.code, r.outcome ? `${r.action} (${r.outcome})` : r.action, r.message.slice(0, 120)]),
            ]),
          );
        });
      },
    )
    .command(
      'retry [name]',
      'Re-queue files whose delivery stopped on a permanent error, after fixing the cause (kangaroo://HOST/PATH, HOST, or all)',
      (c) => c.positional('name', { type: 'string', describe: 'kangaroo://HOST/PATH or HOST; omit for every host' }),
      async (argv) => {
        await withClient(argv, async (client) => {
          let targets: { host: string; path: string }[];
          if (!argv.name) {
            const s = (await client.status()) as RelayStatus;
            targets = [...new Set(s.files.filter((f) => f.blocked).map((f) => f.host))].map((host) => ({ host, path: '' }));
          } else if (argv.name.startsWith('kangaroo://')) {
            targets = [parseKangarooUrl(argv.name)];
          } else {
            targets = [{ host: canonicalHost(argv.name), path: '' }];
          }
          let n = 0;
          for (const t of targets) n += await client.retry(t.host, t.path);
          process.stdout.write(`re-queued ${n} file(s)\n`);
        });
      },
    );
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function renderStatus(s: RelayStatus): string {
  let out = `relay ${s.name} (listening on ${s.listen}, up ${s.uptimeSeconds}s, ${s.connections} connection(s))\n`;
  out += `  export: ${s.export ?? '(none)'}\n`;
  out += `  spool:  ${s.spool.dir}: ${formatBytes(s.spool.bytes)} of ${formatBytes(s.spool.maxBytes)} used (peak ${formatBytes(s.spool.peakBytes)}), ${s.spool.pendingOps} op(s) pending\n`;
  if (s.bwlimitBytesPerSecond) out += `  bwlimit: ${formatBytes(s.bwlimitBytesPerSecond)}/s\n`;
  if (s.failures.total > 0) {
    const kinds = Object.entries(s.failures.byKind).map(([k, n]) => `${n} ${k}`).join(', ');
    out += `  failures: ${s.failures.total} recorded (${kinds}); last: ${s.failures.last?.code} ${s.failures.last?.target} (kangaroo log lists them)\n`;
  }
  for (const [name, via] of s.routes) out += `  route:  ${name} via ${via}\n`;
  if (s.movers.length > 0) {
    out += '\nnext hops:\n';
    out += table([
      ['NEXT HOP', 'STATE', 'SENT', 'DELIVERED', 'RETRIES', 'LAST ERROR'],
      ...s.movers.map((m) => [
        m.nextHop,
        m.state + (m.nextAttemptInMs !== null && m.state === 'backoff' ? ` (${(m.nextAttemptInMs / 1000).toFixed(1)}s)` : ''),
        formatBytes(m.bytesSent),
        formatBytes(m.bytesDelivered),
        String(m.retries),
        m.lastError ? `${m.lastError.code}: ${m.lastError.message}` : '',
      ]),
    ]).replace(/^(?=.)/gm, '  ');
  }
  if (s.destinations.length > 0) {
    out += '\npending by destination:\n';
    out += table([
      ['DESTINATION', 'VIA', 'FILES', 'PENDING', 'OPS', 'BLOCKED'],
      ...s.destinations.map((d) => [d.host, d.nextHop, String(d.files), formatBytes(d.pendingBytes), String(d.pendingOps), String(d.blockedFiles)]),
    ]).replace(/^(?=.)/gm, '  ');
  }
  if (s.buffers.length > 0) {
    out += '\ngrid buffers (pipe mode):\n';
    out += table([
      ['BUFFER', 'WRITER', 'READERS', 'WRITTEN', 'READ', 'HELD', 'IN MEMORY', 'ON DISK'],
      ...s.buffers.map((b) => [
        b.name,
        b.writer,
        String(b.readers),
        formatBytes(b.bytesWritten),
        formatBytes(b.bytesRead),
        formatBytes(b.bytesHeld),
        formatBytes(b.memoryBytes),
        formatBytes(b.diskBytes),
      ]),
    ]).replace(/^(?=.)/gm, '  ');
  }
  if (s.files.length > 0) {
    out += '\nfiles not yet delivered:\n';
    out += table([
      ['FILE', 'PENDING', 'OPS', 'IN FLIGHT', 'PROBLEM'],
      ...s.files.map((f) => [
        `kangaroo://${f.host}${f.path}`,
        formatBytes(f.pendingBytes),
        String(f.pendingOps),
        String(f.inflightOps),
        f.blocked ? `${f.blocked.code}: ${f.blocked.message} (kangaroo retry after fixing)` : '',
      ]),
    ]).replace(/^(?=.)/gm, '  ');
    if (s.filesOmitted > 0) out += `  … and ${s.filesOmitted} more\n`;
  } else {
    out += '\nnothing pending: every accepted write has been delivered.\n';
  }
  return out;
}

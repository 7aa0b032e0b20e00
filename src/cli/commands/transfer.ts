import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Argv } from 'yargs';
import { formatKangarooUrl, parseKangarooUrl, RemoteFile } from '../../address.js';
import { getToStream, putFiles, putStream } from '../../client/transfer.js';
import { KangarooError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { STDIO } from '../defaults.js';
import { Progress } from '../progress.js';
import { withClient } from '../run.js';

/** put, get, push and commit: the four Kangaroo calls on the command line. */
export function register(y: Argv): Argv {
  return y
    .command(
      'put <sources..>',
      'Write local files (or - for stdin) to kangaroo://HOST[:PORT]/PATH; returns once they are safely spooled',
      (c) =>
        c
          .positional('sources', { type: 'string', array: true, demandOption: true, describe: 'local files, then the destination kangaroo:// name' })
          .option('push', { type: 'boolean', default: false, describe: 'also wait until the data reached its destination' })
          .option('unbatched', { type: 'boolean', default: false, describe: 'send each operation in its own frame and wait for it (for comparison)' })
          .example('$0 put results.dat kangaroo://archive.example/run7/results.dat', '')
          .example('$0 put a.txt b.txt kangaroo://archive.example/run7/', 'several files into a directory, batched'),
      async (argv) => {
        const args = argv.sources as string[];
        if (args.length < 2) throw new KangarooError('BAD_ARGUMENT', 'put needs at least one source and a kangaroo:// destination');
        const destText = args[args.length - 1]!;
        const sources = args.slice(0, -1);
        const dest = parseKangarooUrl(destText);
        const intoDir = sources.length > 1 || destText.endsWith('/');
        if (sources.filter((s) => s === STDIO).length > 0 && intoDir) throw new KangarooError('BAD_ARGUMENT', 'stdin (-) needs a file name as destination');
        const sizes = await Promise.all(sources.map((s) => (s === STDIO ? 0 : fsp.stat(s).then((st) => st.size))));
        const total = sizes.reduce((a, b) => a + b, 0);
        await withClient(argv, async (client) => {
          const progress = new Progress('put', total || undefined);
          let sent = 0;
          const targets: RemoteFile[] = sources.map((s) => (intoDir ? { host: dest.host, path: path.posix.join(dest.path, path.basename(s)) } : dest));
          const onBytes = (n: number) => progress.update((sent += n));
          if (sources[0] === STDIO) await putStream(client, process.stdin, targets[0]!, onBytes);
          else await putFiles(client, sources.map((local, i) => ({ local, dest: targets[i]!, size: sizes[i]! })), onBytes);
          await client.commit();
          progress.finish();
          if (argv.push) for (const t of targets) await client.push(t.host, t.path);
          process.stderr.write(
            `kangaroo: ${sources.length} file(s), ${formatBytes(sent)} ${argv.push ? 'delivered to' : 'committed for'} ${destText}` +
              (argv.push ? '\n' : ' (delivery goes on in the background; kangaroo push waits for it)\n'),
          );
        });
      },
    )
    .command(
      'get <source> <dest>',
      'Read kangaroo://HOST[:PORT]/PATH into a local file (or - for stdout), including writes not yet delivered',
      (c) =>
        c
          .positional('source', { type: 'string', demandOption: true })
          .positional('dest', { type: 'string', demandOption: true }),
      async (argv) => {
        const src = parseKangarooUrl(argv.source);
        await withClient(argv, async (client) => {
          const info = await client.stat(src.host, src.path);
          if (info.kind === 'dir') throw new KangarooError('IS_DIR', `${argv.source} is a directory`);
          const progress = new Progress('get', info.size || undefined);
          const toStdout = argv.dest === STDIO;
          const sink = toStdout ? process.stdout : fs.createWriteStream(argv.dest);
          let got = 0;
          await getToStream(client, src, sink, (n) => progress.update((got += n)));
          if (!toStdout) await new Promise<void>((resolve, reject) => (sink as fs.WriteStream).end((err?: Error | null) => (err ? reject(err) : resolve())));
          progress.finish();
        });
      },
    )
    .command(
      'push <names..>',
      'Wait until every earlier write to these files has reached its destination and is fsync\'d there',
      (c) => c.positional('names', { type: 'string', array: true, demandOption: true }),
      async (argv) => {
        await withClient(argv, async (client) => {
          for (const n of argv.names as string[]) {
            const f = parseKangarooUrl(n);
            const progress = new Progress(`push ${formatKangarooUrl(f)}`, undefined);
            const timer = setInterval(() => void pendingBytes(client, f).then((b) => progress.update(b)), 500);
            try {
              await client.push(f.host, f.path);
            } finally {
              clearInterval(timer);
              progress.finish();
            }
            process.stderr.write(`kangaroo: ${formatKangarooUrl(f)} delivered\n`);
          }
        });
      },
    )
    .command(
      'commit',
      'Wait until everything the relay accepted is on its stable storage',
      (c) => c,
      async (argv) => {
        await withClient(argv, (client) => client.commit());
      },
    );
}

async function pendingBytes(client: import('../../client/client.js').RelayClient, f: RemoteFile): Promise<number> {
  const s = (await client.status().catch(() => undefined)) as { files?: { host: string; path: string; pendingBytes: number }[] } | undefined;
  return s?.files?.find((x) => x.host === f.host && x.path === f.path)?.pendingBytes ?? 0;
}

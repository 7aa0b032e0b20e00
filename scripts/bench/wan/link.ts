import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { Resources } from '../resources.js';
import { must, run, start, waitUntil } from './exec.js';
import { mbps, now } from '../stats.js';

/**
 * The emulated wide-area link: the destination host is a network namespace joined
 * to this one by a veth pair, each end shaped by an htb class (this kernel has no
 * netem or tbf, so there is no latency, only rate). Traffic stays inside the pair.
 * A cut drops every packet inside the namespace with nftables, silently, the way a
 * broken route looks from either end (setting the link down is noticed at once by
 * the kernel on both sides, which a real outage is not).
 *
 * Without namespaces (not root, no `ip netns`) the "link" is loopback and the rate
 * is each peer's own limit (kangaroo's --bwlimit, rclone --bwlimit, scp -l; sshfs
 * has none); cuts are then not possible. `kind` says which one a run used.
 */

export interface Link {
  kind: 'netns' | 'loopback';
  /** Address of this host on the link, as the destination sees it. */
  hostIp: string;
  /** Address of the destination host. */
  destIp: string;
  nsName: string | undefined;
  /** The nominal rate now, in MB/s (decimal). */
  rateMBps: number;
  /** How a cut is made: nftables drop, or (without nft) a class rate of 8 bit/s that starves the queue. */
  cutMethod: 'nftables drop' | 'htb 8bit' | 'none';
  /** Wraps a command so that it runs on the destination host. */
  onDest(cmd: string, args: string[]): [string, string[]];
  setRate(MBps: number): Promise<void>;
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** Copies `bytes` over one TCP connection from this host to the destination: decimal MB/s. */
  measure(bytes: number): Promise<number>;
  close(): Promise<void>;
}

let serial = 0;

function namespacesAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(`${d}/${cmd}`));
}

export async function createLink(res: Resources, opts: { rateMBps: number }): Promise<Link> {
  return namespacesAvailable() ? netnsLink(res, opts.rateMBps) : loopbackLink(res, opts.rateMBps);
}

/** htb takes bits per second; a decimal MB/s rate as kbit keeps fractional rates exact. */
const htbRate = (MBps: number) => `${Math.max(1, Math.round(MBps * 8000))}kbit`;

async function netnsLink(res: Resources, rateMBps: number): Promise<Link> {
  const n = (process.pid % 4096) * 16 + (serial++ % 16);
  const ns = `kangaroo-wan-${process.pid}-${serial}`;
  // interface names are limited to 15 characters
  const hostIf = `kgw${n.toString(36)}h`;
  const destIf = `kgw${n.toString(36)}d`;
  const subnet = `10.213.${(n >> 6) & 255}.${(n & 63) * 4}`;
  const base = subnet.split('.').map(Number);
  const hostIp = `${base[0]}.${base[1]}.${base[2]}.${base[3]! + 1}`;
  const destIp = `${base[0]}.${base[1]}.${base[2]}.${base[3]! + 2}`;
  const inNs = (cmd: string, args: string[]): [string, string[]] => ['ip', ['netns', 'exec', ns, cmd, ...args]];
  const nsRun = (cmd: string, args: string[]) => must(...inNs(cmd, args));
  // registered before anything exists, so a failure halfway still removes what was made
  res.defer({
    name: `network namespace ${ns}`,
    run: async () => {
      await run('ip', ['link', 'del', hostIf], 10_000);
      await run('ip', ['netns', 'del', ns], 10_000);
    },
    runSync: () => {
      for (const args of [['link', 'del', hostIf], ['netns', 'del', ns]]) {
        try {
          execFileSync('ip', args, { stdio: 'ignore' });
        } catch {
          // not there (any more)
        }
      }
    },
  });
  await must('ip', ['netns', 'add', ns]);
  await must('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', destIf]);
  await must('ip', ['link', 'set', destIf, 'netns', ns]);
  await must('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
  await must('ip', ['link', 'set', hostIf, 'up']);
  await nsRun('ip', ['addr', 'add', `${destIp}/30`, 'dev', destIf]);
  await nsRun('ip', ['link', 'set', destIf, 'up']);
  await nsRun('ip', ['link', 'set', 'lo', 'up']);
  // both directions shaped: data one way, acknowledgements and reads the other
  const shape = async (verb: 'add' | 'change', MBps: number) => {
    for (const [wrap, dev] of [[(c: string, a: string[]): [string, string[]] => [c, a], hostIf], [inNs, destIf]] as const) {
      if (verb === 'add') await must(...wrap('tc', ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '10']));
      await must(...wrap('tc', ['class', verb, 'dev', dev, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', htbRate(MBps), 'quantum', '1514']));
    }
  };
  await shape('add', rateMBps);
  const cutMethod = hasCommand('nft') ? 'nftables drop' : 'htb 8bit';
  let cutNow = false;
  const link: Link = {
    kind: 'netns',
    hostIp,
    destIp,
    nsName: ns,
    rateMBps,
    cutMethod,
    onDest: inNs,
    async setRate(MBps) {
      await shape('change', MBps);
      link.rateMBps = MBps;
    },
    async cut() {
      if (cutNow) return;
      cutNow = true;
      if (cutMethod === 'htb 8bit') {
        for (const [wrap, dev] of [[(c: string, a: string[]): [string, string[]] => [c, a], hostIf], [inNs, destIf]] as const) {
          await must(...wrap('tc', ['class', 'change', 'dev', dev, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '8bit', 'ceil', '8bit']));
        }
        return;
      }
      // priority -300: before connection tracking, so established flows are dropped too
      await nsRun('nft', ['add', 'table', 'inet', 'kangaroo_cut']);
      for (const [chain, hook] of [['in', 'input'], ['out', 'output']]) {
        await nsRun('nft', ['add', 'chain', 'inet', 'kangaroo_cut', chain, `{ type filter hook ${hook} priority -300 ; policy drop ; }`]);
      }
    },
    async restore() {
      if (!cutNow) return;
      cutNow = false;
      if (cutMethod === 'htb 8bit') await shape('change', link.rateMBps);
      else await nsRun('nft', ['delete', 'table', 'inet', 'kangaroo_cut']);
    },
    measure: (bytes) => measureRate(res, link, bytes),
    async close() {
      await run('ip', ['link', 'del', hostIf], 10_000);
      await run('ip', ['netns', 'del', ns], 10_000);
    },
  };
  return link;
}

async function loopbackLink(res: Resources, rateMBps: number): Promise<Link> {
  const link: Link = {
    kind: 'loopback',
    hostIp: '127.0.0.1',
    destIp: '127.0.0.1',
    nsName: undefined,
    rateMBps,
    cutMethod: 'none',
    onDest: (cmd, args) => [cmd, args],
    async setRate(MBps) {
      link.rateMBps = MBps;
    },
    async cut() {
      throw new Error('no network namespaces here: a link cut cannot be emulated on loopback');
    },
    async restore() {},
    measure: (bytes) => measureRate(res, link, bytes),
    async close() {},
  };
  return link;
}

/**
 * The link's real rate: a sink on the destination host counts bytes and answers
 * once it has them all; the time is from the first write to the answer. (On
 * loopback this is the unthrottled rate, which is the point: there is no link.)
 */
const SINK = `
const net = require('node:net');
const want = Number(process.argv[2]);
const server = net.createServer((s) => {
  let got = 0;
  s.on('data', (d) => { got += d.length; if (got >= want) s.end('k'); });
  s.on('error', () => {});
});
server.listen(0, process.argv[1], () => process.stdout.write(server.address().port + '\\n'));
`;

async function measureRate(res: Resources, link: Link, bytes: number): Promise<number> {
  const net = await import('node:net');
  const sink = start(res, 'link rate sink', ...link.onDest(process.execPath, ['-e', SINK, link.destIp, String(bytes)]));
  await waitUntil('rate sink', () => sink.output().includes('\n'), 10_000, () => (sink.exited() ? sink.output() || 'exited' : undefined));
  const port = Number(sink.output().trim());
  const chunk = Buffer.alloc(1 << 20, 0x6b);
  try {
    return await new Promise<number>((resolve, reject) => {
      const socket = net.connect({ host: link.destIp, port });
      let t0 = 0;
      socket.on('error', reject);
      socket.on('data', () => {
        resolve(mbps(bytes, now() - t0));
        socket.destroy();
      });
      socket.on('connect', async () => {
        t0 = now();
        for (let sent = 0; sent < bytes; sent += chunk.length) {
          const part = sent + chunk.length > bytes ? chunk.subarray(0, bytes - sent) : chunk;
          if (!socket.write(part)) await new Promise((r) => socket.once('drain', r));
        }
      });
    });
  } finally {
    sink.child.kill('SIGKILL');
  }
}

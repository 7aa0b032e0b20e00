import { MoverStatus } from '../mover/mover.js';
import { FailureRecord } from '../mover/failure-log.js';
import { Spool } from '../spool/spool.js';

/** What `kangaroo status` shows: the relay, its spool, its movers, and every file not yet delivered. */
export interface RelayStatus {
  name: string;
  listen: string;
  export: string | null;
  uptimeSeconds: number;
  connections: number;
  bwlimitBytesPerSecond: number | null;
  routes: [string, string][];
  spool: {
    dir: string;
    bytes: number;
    maxBytes: number;
    peakBytes: number;
    memoryBytes: number;
    pendingOps: number;
    recovery: { tornTailBytes: number; corruptedRecords: number } | null;
  };
  movers: MoverStatus[];
  destinations: {
    host: string;
    nextHop: string;
    files: number;
    pendingBytes: number;
    pendingOps: number;
    blockedFiles: number;
    lastError: { code: string; message: string; at: string } | null;
  }[];
  files: {
    host: string;
    path: string;
    pendingBytes: number;
    pendingOps: number;
    inflightOps: number;
    blocked: { code: string; message: string; since: string } | null;
  }[];
  filesOmitted: number;
  failures: { total: number; byKind: Record<string, number>; last: FailureRecord | null };
  buffers: {
    name: string;
    writer: string;
    readers: number;
    bytesWritten: number;
    bytesRead: number;
    bytesHeld: number;
    memoryBytes: number;
    diskBytes: number;
    peakMemoryBytes: number;
    ageSeconds: number;
  }[];
}

const MAX_FILES_LISTED = 500;

export function buildStatus(s: {
  name: string;
  listen: string;
  exportDir: string | undefined;
  spoolDir: string;
  startedAt: number;
  spool: Spool;
  movers: MoverStatus[];
  routes: [string, string][];
  connections: number;
  bwlimit: number | undefined;
  nextHopOf: (host: string) => string;
  buffers: RelayStatus['buffers'];
  failures: RelayStatus['failures'];
}): RelayStatus {
  const files = s.spool.allFiles().filter((f) => f.ops.size > 0 || f.blocked);
  const byHost = new Map<string, RelayStatus['destinations'][number]>();
  for (const f of files) {
    let d = byHost.get(f.host);
    if (!d) {
      const nextHop = s.nextHopOf(f.host);
      const mover = s.movers.find((m) => m.nextHop === nextHop);
      d = { host: f.host, nextHop, files: 0, pendingBytes: 0, pendingOps: 0, blockedFiles: 0, lastError: mover?.lastError ?? null };
      byHost.set(f.host, d);
    }
    d.files++;
    d.pendingBytes += f.pendingBytes;
    d.pendingOps += f.ops.size;
    if (f.blocked) {
      d.blockedFiles++;
      d.lastError = { code: f.blocked.code, message: f.blocked.message, at: new Date(f.blocked.since).toISOString() };
    }
  }
  const rec = s.spool.recovery;
  return {
    name: s.name,
    listen: s.listen,
    export: s.exportDir ?? null,
    uptimeSeconds: Math.round((Date.now() - s.startedAt) / 1000),
    connections: s.connections,
    bwlimitBytesPerSecond: s.bwlimit ?? null,
    routes: s.routes,
    spool: {
      dir: s.spoolDir,
      bytes: s.spool.bytesUsed,
      maxBytes: s.spool.options.maxBytes,
      peakBytes: s.spool.peakBytes,
      memoryBytes: s.spool.memoryBytes,
      pendingOps: s.spool.opCount,
      recovery: rec ? { tornTailBytes: rec.tornTailBytes, corruptedRecords: rec.corrupted.length } : null,
    },
    movers: s.movers,
    destinations: [...byHost.values()],
    files: files.slice(0, MAX_FILES_LISTED).map((f) => ({
      host: f.host,
      path: f.path,
      pendingBytes: f.pendingBytes,
      pendingOps: f.ops.size,
      inflightOps: [...f.ops.values()].filter((o) => o.inflight).length,
      blocked: f.blocked ? { code: f.blocked.code, message: f.blocked.message, since: new Date(f.blocked.since).toISOString() } : null,
    })),
    filesOmitted: Math.max(0, files.length - MAX_FILES_LISTED),
    buffers: s.buffers,
    failures: s.failures,
  };
}

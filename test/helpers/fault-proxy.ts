import net from 'node:net';
import { onTestFinished } from 'vitest';
import { decodeFrame } from '../../src/protocol/frame.js';
import { crc32 } from '../../src/util/crc32.js';

/**
 * A hostile link for fault tests: a TCP proxy on 127.0.0.1:0, in the test
 * process, between a relay and its next hop (the relay routes the next hop
 * through it: `--route DEST=127.0.0.1:PORT`). Its behaviour is switched while
 * traffic flows:
 *
 * - pass:    forward both ways (with back-pressure), like a plain link;
 * - drop:    destroy both sides of every connection, at once or after N more
 *            client→server bytes (so the cut lands inside a frame); `persistent`
 *            keeps refusing new connections until the next mode change;
 * - stall:   stop forwarding without closing: sockets stay open, what arrives is
 *            held (reading stops past 16 MiB held, as a full TCP window would);
 *            new connections are held the same way;
 * - corrupt: flip one byte of put data in the next frame(s) going client→server
 *            (at most one per connection: a receiver stops reading at the first bad frame),
 *            either leaving the frame CRC alone (the receiver's frame check must
 *            catch it) or recomputing it (only the end-to-end `sum` of the put can).
 *
 * Client→server bytes are reassembled into whole frames (u32 length | u32 crc |
 * u8 opcode | u32 id | body, see src/protocol/frame.ts) so a corruption can pick a
 * byte inside put data; server→client bytes pass through as they come.
 * Closing the proxy closes everything. Each proxy is closed when its test finishes.
 */

export interface Corruption {
  link: number;
  recomputedCrc: boolean;
  host: string;
  path: string;
  /** File offset of the flipped byte. */
  fileOffset: number;
  original: number;
  flipped: number;
}

export interface ProxyStats {
  /** Connections accepted so far. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Client→server bytes forwarded. */
  bytesUp: number;
  /** Server→client bytes forwarded. */
  bytesDown: number;
  /** Client→server frames forwarded whole. */
  framesUp: number;
  /** Cut events (one drop() cuts every open connection). */
  cuts: number;
  /** When the last cut happened (Date.now()). */
  lastCutAt: number;
  /** Connections destroyed by drop (both sides). */
  drops: number;
  /** Drops whose cut fell strictly inside a frame. */
  midFrameDrops: number;
  /** Connections that were held by a stall at some point. */
  stalled: number;
  /** Held connections that a peer closed while they were held. */
  closedWhileStalled: number;
  corruptions: Corruption[];
}

type Mode = 'pass' | 'stall' | 'refuse';

/** Bytes a stalled connection takes in (and holds) before it stops reading. */
const MAX_HELD = 16 * 1024 * 1024;

/** Frames larger than this are not Kangaroo traffic: that link falls back to raw forwarding. */
const MAX_ASSEMBLED_FRAME = 64 * 1024 * 1024;

interface Link {
  id: number;
  client: net.Socket;
  server: net.Socket;
  /** Client→server bytes of the frame being assembled. */
  upChunks: Buffer[];
  upBytes: number;
  raw: boolean;
  /** Held (not forwarded) while stalled. */
  heldUp: Buffer[];
  heldDown: Buffer[];
  heldBytes: number;
  corrupted: boolean;
  stalled: boolean;
  /** A stall that `pass({ resumeHeld: false })` left behind: never forwards again. */
  blackholed: boolean;
  closed: boolean;
}

export class FaultProxy {
  readonly stats: ProxyStats = {
    connections: 0,
    open: 0,
    bytesUp: 0,
    bytesDown: 0,
    framesUp: 0,
    cuts: 0,
    lastCutAt: 0,
    drops: 0,
    midFrameDrops: 0,
    stalled: 0,
    closedWhileStalled: 0,
    corruptions: [],
  };
  private mode: Mode = 'pass';
  private links = new Set<Link>();
  private nextId = 1;
  /** Client→server bytes still to forward before a pending cut. */
  private dropBudget: number | undefined;
  private corruptArmed: { recomputeCrc: boolean; remaining: number } | undefined;
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly target: { host: string; port: number },
    private readonly random: () => number,
  ) {}

  /** Starts a proxy to `target` (host:port) on 127.0.0.1 with a free port. */
  static async start(target: string, opts: { random?: () => number } = {}): Promise<FaultProxy> {
    const colon = target.lastIndexOf(':');
    const t = { host: target.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(target.slice(colon + 1)) };
    const server = net.createServer();
    const proxy = new FaultProxy(server, t, opts.random ?? Math.random);
    server.on('connection', (s) => proxy.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    onTestFinished(() => proxy.close());
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get currentMode(): string {
    return this.mode;
  }

  /**
   * Forward again, faithfully: a pending cut or corruption is called off. Held
   * connections resume with what they held, unless `resumeHeld` is false: then
   * they stay silent for good (a path that lost its state), open until a peer
   * gives up on them, while new connections pass.
   */
  pass(opts: { resumeHeld?: boolean } = {}): void {
    this.mode = 'pass';
    this.dropBudget = undefined;
    this.corruptArmed = undefined;
    for (const l of this.links) {
      if (!l.stalled || l.blackholed) continue;
      if (opts.resumeHeld === false) {
        l.blackholed = true;
        continue;
      }
      l.stalled = false;
      l.heldBytes = 0;
      const up = l.heldUp.splice(0);
      const down = l.heldDown.splice(0);
      for (const c of up) this.fromClient(l, c);
      for (const c of down) this.fromServer(l, c);
      if (!l.closed) {
        if (!l.server.writableNeedDrain) l.client.resume();
        if (!l.client.writableNeedDrain) l.server.resume();
      }
    }
  }

  /**
   * Cuts every connection: now, or once `afterBytes` more client→server bytes
   * went through (then forwarding goes on for new connections). `persistent`:
   * keep destroying new connections until another mode is set.
   */
  drop(opts: { afterBytes?: number; persistent?: boolean } = {}): void {
    if (opts.persistent) {
      this.mode = 'refuse';
      this.dropBudget = undefined;
      this.cutAll(false);
      return;
    }
    if (opts.afterBytes !== undefined && opts.afterBytes > 0) {
      this.dropBudget = opts.afterBytes;
      return;
    }
    this.cutAll(false);
  }

  /** A pending `drop({ afterBytes })` has not happened yet. */
  get dropPending(): boolean {
    return this.dropBudget !== undefined;
  }

  /** Stops forwarding without closing anything; new connections are held too. */
  stall(): void {
    this.mode = 'stall';
    for (const l of this.links) this.hold(l);
  }

  /** Flips one byte of put data in each of the next `count` client→server frames that carry some. */
  corrupt(opts: { recomputeCrc: boolean; count?: number }): void {
    this.corruptArmed = { recomputeCrc: opts.recomputeCrc, remaining: opts.count ?? 1 };
  }

  /** Corruptions armed and not yet applied. */
  get corruptionsPending(): number {
    return this.corruptArmed?.remaining ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cutAll(false, false);
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- internals ----

  private onConnection(client: net.Socket): void {
    this.stats.connections++;
    if (this.closed || this.mode === 'refuse') {
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    const server = net.connect({ host: this.target.host, port: this.target.port });
    server.setNoDelay(true);
    const link: Link = {
      id: this.nextId++,
      client,
      server,
      upChunks: [],
      upBytes: 0,
      raw: false,
      heldUp: [],
      heldDown: [],
      heldBytes: 0,
      corrupted: false,
      stalled: false,
      blackholed: false,
      closed: false,
    };
    this.links.add(link);
    this.stats.open++;
    const end = () => this.closeLink(link);
    client.on('error', end);
    server.on('error', end);
    client.on('close', end);
    server.on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (link.stalled) {
        link.heldUp.push(chunk);
        // reading on lets a peer's close be seen while held
        if ((link.heldBytes += chunk.length) > MAX_HELD) client.pause();
        return;
      }
      this.fromClient(link, chunk);
    });
    server.on('data', (chunk: Buffer) => {
      if (link.stalled) {
        link.heldDown.push(chunk);
        if ((link.heldBytes += chunk.length) > MAX_HELD) server.pause();
        return;
      }
      this.fromServer(link, chunk);
    });
    client.on('drain', () => {
      if (!link.stalled) server.resume();
    });
    server.on('drain', () => {
      if (!link.stalled) client.resume();
    });
    if (this.mode === 'stall') this.hold(link);
  }

  private hold(l: Link): void {
    if (l.stalled || l.closed || l.blackholed) return;
    l.stalled = true;
    this.stats.stalled++;
  }

  private closeLink(l: Link, lingerServer = false): void {
    if (l.closed) return;
    l.closed = true;
    if (l.stalled) this.stats.closedWhileStalled++;
    this.links.delete(l);
    this.stats.open--;
    l.client.destroy();
    if (!lingerServer) l.server.destroy();
  }

  /** Destroys every connection; `cut`, if given, first gets its half-frame out to the server. */
  private cutAll(midFrame: boolean, count = true, cut?: Link): void {
    if (count) {
      this.stats.cuts++;
      this.stats.lastCutAt = Date.now();
    }
    for (const l of [...this.links]) {
      if (count) {
        this.stats.drops++;
        if (midFrame && l === cut) this.stats.midFrameDrops++;
      }
      if (l === cut) {
        // the client sees a reset now; the server gets the bytes written so far, then the end
        l.client.destroy();
        l.server.end();
        setTimeout(() => l.server.destroy(), 500).unref();
      }
      this.closeLink(l, l === cut);
    }
  }

  private fromServer(l: Link, chunk: Buffer): void {
    if (l.closed) return;
    this.stats.bytesDown += chunk.length;
    if (!l.client.write(chunk)) l.server.pause();
  }

  private fromClient(l: Link, chunk: Buffer): void {
    if (l.closed) return;
    if (l.raw) {
      this.forwardUp(l, chunk, false);
      return;
    }
    l.upChunks.push(chunk);
    l.upBytes += chunk.length;
    while (!l.closed && l.upBytes >= 4) {
      const head = l.upChunks[0]!.length >= 4 ? l.upChunks[0]! : Buffer.concat(l.upChunks);
      const total = head.readUInt32BE(0) + 4;
      if (total > MAX_ASSEMBLED_FRAME) {
        // not a frame we understand: forward the rest untouched
        l.raw = true;
        const rest = Buffer.concat(l.upChunks);
        l.upChunks = [];
        l.upBytes = 0;
        this.forwardUp(l, rest, false);
        return;
      }
      if (l.upBytes < total) return;
      const all = l.upChunks.length === 1 ? l.upChunks[0]! : Buffer.concat(l.upChunks);
      // a frame of its own (copied) so corruption never touches a buffer someone else holds
      const frame = Buffer.from(all.subarray(0, total));
      const rest = all.subarray(total);
      l.upChunks = rest.length > 0 ? [rest] : [];
      l.upBytes = rest.length;
      this.maybeCorrupt(l, frame);
      this.stats.framesUp++;
      this.forwardUp(l, frame, true);
    }
  }

  /** Writes client→server bytes, honouring a pending cut. */
  private forwardUp(l: Link, bytes: Buffer, isFrame: boolean): void {
    if (this.dropBudget !== undefined) {
      if (bytes.length >= this.dropBudget) {
        const n = this.dropBudget;
        this.dropBudget = undefined;
        if (n > 0) {
          l.server.write(bytes.subarray(0, n));
          this.stats.bytesUp += n;
        }
        // a cut strictly inside a whole frame (raw bytes count as inside)
        const mid = n > 0 && (n < bytes.length || !isFrame);
        this.cutAll(mid, true, l);
        return;
      }
      this.dropBudget -= bytes.length;
    }
    this.stats.bytesUp += bytes.length;
    if (!l.server.write(bytes)) l.client.pause();
  }

  private maybeCorrupt(l: Link, frame: Buffer): void {
    const armed = this.corruptArmed;
    if (!armed || armed.remaining <= 0 || l.corrupted) return;
    let msg;
    try {
      msg = decodeFrame(frame).msg;
    } catch {
      return;
    }
    const ops = msg.type === 'bulk' ? msg.ops : msg.type === 'put' ? [msg] : [];
    const puts = ops.filter((o): o is Extract<typeof o, { type: 'put' }> => o.type === 'put' && o.data.length > 0);
    if (puts.length === 0) return;
    const put = puts[Math.floor(this.random() * puts.length)]!;
    if (put.data.buffer !== frame.buffer) return;
    const index = Math.floor(this.random() * put.data.length);
    const pos = put.data.byteOffset - frame.byteOffset + index;
    const original = frame[pos]!;
    const flipped = original ^ (1 + Math.floor(this.random() * 255));
    frame[pos] = flipped;
    if (armed.recomputeCrc) frame.writeUInt32BE(crc32(frame.subarray(8)), 4);
    armed.remaining--;
    l.corrupted = true;
    if (armed.remaining === 0) this.corruptArmed = undefined;
    this.stats.corruptions.push({
      link: l.id,
      recomputedCrc: armed.recomputeCrc,
      host: put.host,
      path: put.path,
      fileOffset: put.offset + index,
      original,
      flipped,
    });
  }
}

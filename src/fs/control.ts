import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { KangarooError } from '../errors.js';

/**
 * How `kangaroo umount` (and `kangaroo run --mount`) talk to the process serving a
 * mount: a Unix socket, one JSON request, answered by JSON lines (progress, then
 * the result). The serving process is the only one that can commit what it holds.
 * `unmount` commits and unmounts; `commit` commits and keeps the mount.
 */

export interface ControlRequest {
  cmd: 'unmount' | 'commit';
  push: boolean;
}

type ControlHandler = (push: boolean, progress: (pendingBytes: number) => void) => Promise<{ ok: boolean; message: string }>;

export type ControlMessage = { progress: { pendingBytes: number } } | { done: true; ok: boolean; message: string };

/**
 * `onUnmountAbandoned`: an `umount --push` left before its answer (interrupted while it
 * waited for delivery); the unmount need not keep waiting for anyone.
 */
export async function serveControl(socketPath: string, onUnmount: ControlHandler, onCommit?: ControlHandler, onUnmountAbandoned?: () => void): Promise<net.Server> {
  await fsp.mkdir(path.dirname(socketPath), { recursive: true });
  await fsp.rm(socketPath, { force: true });
  const server = net.createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      } catch {
        sock.end(JSON.stringify({ done: true, ok: false, message: 'bad control request' }) + '\n');
        return;
      }
      const handler = req.cmd === 'unmount' ? onUnmount : req.cmd === 'commit' ? onCommit : undefined;
      if (!handler) {
        sock.end(JSON.stringify({ done: true, ok: false, message: `unknown command ${String(req.cmd)}` }) + '\n');
        return;
      }
      const send = (m: ControlMessage) => sock.writable && sock.write(JSON.stringify(m) + '\n');
      let answered = false;
      if (req.cmd === 'unmount' && req.push) sock.once('close', () => answered || onUnmountAbandoned?.());
      void handler(!!req.push, (pendingBytes) => send({ progress: { pendingBytes } }))
        .catch((err: unknown) => ({ ok: false, message: `${KangarooError.from(err).code}: ${KangarooError.from(err).message}` }))
        .then((r) => {
          answered = true;
          send({ done: true, ...r });
          sock.end();
        });
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return server;
}

/** Asks a mount process to unmount; resolves with its result. */
export function requestUnmount(socketPath: string, push: boolean, onProgress: (pendingBytes: number) => void): Promise<{ ok: boolean; message: string }> {
  return request(socketPath, { cmd: 'unmount', push }, onProgress);
}

/** Asks a mount process to commit everything written through it (with push: and deliver it), keeping the mount. */
export function requestCommit(socketPath: string, push: boolean, onProgress: (pendingBytes: number) => void): Promise<{ ok: boolean; message: string }> {
  return request(socketPath, { cmd: 'commit', push }, onProgress);
}

function request(socketPath: string, req: ControlRequest, onProgress: (pendingBytes: number) => void): Promise<{ ok: boolean; message: string }> {
  return new Promise((resolve, reject) => {
    if (!fs.existsSync(socketPath)) {
      reject(new KangarooError('NOT_FOUND', 'no kangaroo mount process serves that directory'));
      return;
    }
    const sock = net.connect(socketPath);
    let buf = '';
    let result: { ok: boolean; message: string } | undefined;
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, nl)) as ControlMessage;
        buf = buf.slice(nl + 1);
        if ('progress' in m) onProgress(m.progress.pendingBytes);
        else result = { ok: m.ok, message: m.message };
      }
    });
    sock.on('error', (err) => {
      // a socket file nobody listens on: the mount's process is gone (killed, crashed)
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED' || code === 'ENOENT') reject(new KangarooError('NOT_FOUND', 'no kangaroo mount process serves that directory (its control socket is left from a process that is gone)'));
      else reject(KangarooError.from(err, 'cannot reach the mount process'));
    });
    sock.on('close', () => (result ? resolve(result) : reject(new KangarooError('CONNECTION_LOST', 'the mount process ended without an answer'))));
  });
}

/** Where the control socket of a mount lives: one per mount point, under the state directory. */
export function controlSocketPath(stateDir: string, mountpoint: string): string {
  const id = crypto.createHash('sha1').update(path.resolve(mountpoint)).digest('hex').slice(0, 16);
  return path.join(stateDir, 'mounts', `${id}.sock`);
}

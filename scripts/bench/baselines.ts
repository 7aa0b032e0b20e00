import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Payload } from './data.js';
import { Resources } from './resources.js';
import { mbps, now } from './stats.js';

/** The yardsticks every relay figure is divided by, measured in the same run. */

/**
 * A baseline taken twice in a row: the first pass warms what a long-running relay
 * has warm (memory the kernel hands out for page cache and socket buffers, which on
 * this kind of VM costs several times more on first touch after a pause); the second
 * pass is the baseline. Both are recorded.
 */
export interface Baseline {
  mbps: number;
  ms: number;
  firstPassMbps: number;
}

/** Local disk: the payload written in 1 MiB chunks to a new file in a temp dir, fsync'd at the end. */
export async function diskWrite(res: Resources, payload: Payload): Promise<Baseline> {
  const dir = await res.tempDir();
  const first = await diskWriteOnce(path.join(dir, 'warm-up.bin'), payload);
  const second = await diskWriteOnce(path.join(dir, 'baseline.bin'), payload);
  return { ...second, firstPassMbps: first.mbps };
}

async function diskWriteOnce(file: string, payload: Payload): Promise<{ mbps: number; ms: number }> {
  const t0 = now();
  const fh = await fsp.open(file, 'w');
  try {
    for (const chunk of payload.chunks) {
      let done = 0;
      while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done)).bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  const ms = now() - t0;
  await fsp.rm(file, { force: true });
  return { mbps: mbps(payload.bytes, ms), ms };
}

/**
 * Plain TCP over loopback with node:net: a discarding server in its own process,
 * a client writing the payload's 1 MiB buffers, timed until the server has all bytes
 * (it answers a byte). Twice on one connection; the second is the baseline.
 */
export async function tcpCopy(res: Resources, sinkScript: string, payload: Payload, toFile?: string): Promise<Baseline> {
  const child = spawn(process.execPath, [sinkScript, String(payload.bytes), ...(toFile ? [toFile] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  res.track({ name: 'tcp sink', child, output: () => output });
  const deadline = Date.now() + 20_000;
  while (!output.includes('\n')) {
    if (child.exitCode !== null) throw new Error(`tcp sink exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('tcp sink did not start within 20 s');
    await new Promise((r) => setTimeout(r, 10));
  }
  const port = Number(output.trim());
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  try {
    const first = await tcpCopyOnce(socket, payload);
    const second = await tcpCopyOnce(socket, payload);
    return { ...second, firstPassMbps: first.mbps };
  } finally {
    socket.destroy();
  }
}

/**
 * A plain copy over TCP: the same, but the far end writes the bytes to a file and
 * fsyncs it before it answers, as the relay chain's delivery ends with the file safe.
 */
export async function tcpFileCopy(res: Resources, sinkScript: string, payload: Payload): Promise<Baseline> {
  const dir = await res.tempDir();
  return tcpCopy(res, sinkScript, payload, path.join(dir, 'copy.bin'));
}

async function tcpCopyOnce(socket: net.Socket, payload: Payload): Promise<{ mbps: number; ms: number }> {
  const answered = once(socket, 'data');
  const t0 = now();
  for (const chunk of payload.chunks) {
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  await answered;
  const ms = now() - t0;
  return { mbps: mbps(payload.bytes, ms), ms };
}

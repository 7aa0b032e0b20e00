import fs from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { RemoteFile } from '../address.js';
import { RelayClient } from './client.js';

/** Whole-file transfers on top of the four calls, shared by the CLI, the demo and the benchmarks. */

export const CHUNK_BYTES = 1024 * 1024;

/**
 * Writes a stream to a remote file from offset 0, replacing what was there.
 * Resolves when every byte is handed to the relay (not committed: call commit).
 */
export async function putStream(
  client: RelayClient,
  source: Readable,
  dest: RemoteFile,
  onBytes: (n: number) => void = () => undefined,
): Promise<number> {
  await client.truncate(dest.host, dest.path, 0);
  let offset = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await client.put(dest.host, dest.path, offset, data);
    offset += data.length;
    onBytes(data.length);
  };
  for await (const chunk of source) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    pending.push(buf);
    pendingBytes += buf.length;
    if (pendingBytes >= CHUNK_BYTES) await flush();
  }
  await flush();
  return offset;
}

export async function putFile(client: RelayClient, local: string, dest: RemoteFile, onBytes?: (n: number) => void): Promise<number> {
  return putStream(client, fs.createReadStream(local, { highWaterMark: CHUNK_BYTES }), dest, onBytes);
}

/**
 * Writes many local files, in the order given, each replacing its remote file.
 * Files up to CHUNK_BYTES (by the size given) are read whole, so consecutive small
 * files are handed to the client without waiting in between and their truncate and
 * put travel together in bulk frames; larger files are streamed. Resolves when every
 * byte is handed to the relay (not committed).
 */
export async function putFiles(
  client: RelayClient,
  files: { local: string; dest: RemoteFile; size: number }[],
  onBytes: (n: number) => void = () => undefined,
): Promise<number> {
  let total = 0;
  for (const f of files) {
    if (f.size > CHUNK_BYTES) {
      total += await putFile(client, f.local, f.dest, onBytes);
      continue;
    }
    // A small file in one synchronous read: open, read and close through the thread pool
    // are four hand-offs each, which cost a put of 1,000 files of 4 KiB more than the
    // reads themselves. A command line client serves no one else while it waits.
    const data = fs.readFileSync(f.local);
    await client.truncate(f.dest.host, f.dest.path, 0);
    // a file that grew since it was measured still goes in frame-sized puts
    for (let at = 0; at < data.length; at += CHUNK_BYTES) await client.put(f.dest.host, f.dest.path, at, data.subarray(at, at + CHUNK_BYTES));
    total += data.length;
    onBytes(data.length);
  }
  return total;
}

/** Reads a whole remote file into a writable stream, with a few reads in flight. */
export async function getToStream(
  client: RelayClient,
  src: RemoteFile,
  sink: Writable,
  onBytes: (n: number) => void = () => undefined,
  window = 4,
): Promise<number> {
  let nextOffset = 0;
  let total = 0;
  let eof = false;
  const inflight: Promise<Buffer>[] = [];
  const issue = () => {
    inflight.push(client.get(src.host, src.path, nextOffset, CHUNK_BYTES));
    nextOffset += CHUNK_BYTES;
  };
  for (let i = 0; i < window; i++) issue();
  while (inflight.length > 0) {
    const data = await inflight.shift()!;
    if (data.length > 0 && !eof) {
      total += data.length;
      onBytes(data.length);
      if (!sink.write(data)) await new Promise((r) => sink.once('drain', r));
    }
    if (data.length < CHUNK_BYTES) eof = true;
    if (!eof) issue();
  }
  return total;
}

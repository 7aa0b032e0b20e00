import fs from 'node:fs';
import net from 'node:net';

/**
 * The receiving end of the TCP baselines, run as its own process (as a relay is):
 * accepts a stream and answers one byte each time it has received another BYTES
 * (its first argument). Prints its port when listening.
 *
 * With a second argument FILE it is a plain copy: every BYTES received are written
 * to a new file FILE.N and fsync'd before the answer, as a copy tool that ends with
 * the file safe at the far end does. Without it, the bytes are discarded.
 */
const expected = Number(process.argv[2]);
const file = process.argv[3];
if (!Number.isFinite(expected) || expected <= 0) {
  process.stderr.write('usage: tcp-sink BYTES [FILE]\n');
  process.exit(2);
}

/**
 * Writes the chunks in order at increasing offsets into a new file per pass;
 * `finishPass` resolves once all are on disk, then deletes that file (as the disk
 * baseline does), so each pass writes fresh pages as a delivered file does.
 */
class FileSink {
  private fd: number;
  private pass = 0;
  private offset = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly base: string) {
    this.fd = fs.openSync(this.name(), 'w');
  }

  private name(): string {
    return `${this.base}.${this.pass}`;
  }

  write(chunk: Buffer): void {
    const at = this.offset;
    this.offset += chunk.length;
    const fd = this.fd;
    this.writing = this.writing.then(() => writeAll(fd, chunk, at));
  }

  async finishPass(): Promise<void> {
    const done = this.writing;
    const [fd, file] = [this.fd, this.name()];
    this.pass++;
    this.offset = 0;
    this.fd = fs.openSync(this.name(), 'w');
    await done;
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
    fs.closeSync(fd);
    fs.unlinkSync(file);
  }
}

function writeAll(fd: number, chunk: Buffer, at: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number) => {
      if (done === chunk.length) return resolve();
      fs.write(fd, chunk, done, chunk.length - done, at + done, (e, n) => (e ? reject(e) : step(done + n)));
    };
    step(0);
  });
}

const server = net.createServer((socket) => {
  let received = 0;
  const sink = file ? new FileSink(file) : undefined;
  socket.on('data', (d) => {
    sink?.write(d);
    received += d.length;
    while (received >= expected) {
      received -= expected;
      if (sink) void sink.finishPass().then(() => socket.write('k'));
      else socket.write('k');
    }
  });
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
});

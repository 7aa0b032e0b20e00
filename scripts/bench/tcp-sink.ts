import net from 'node:net';

/**
 * The receiving end of the TCP baseline, run as its own process (as a relay is):
 * accepts a stream, discards it, and answers one byte each time it has received
 * another BYTES (its argument). Prints its port when listening.
 */
const expected = Number(process.argv[2]);
if (!Number.isFinite(expected) || expected <= 0) {
  process.stderr.write('usage: tcp-sink BYTES\n');
  process.exit(2);
}
const server = net.createServer((socket) => {
  let received = 0;
  socket.on('data', (d) => {
    received += d.length;
    while (received >= expected) {
      received -= expected;
      socket.write('k');
    }
  });
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
});

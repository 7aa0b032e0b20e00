import net from 'node:net';

/**
 * A link with latency, in this process: a TCP proxy on 127.0.0.1:0 that forwards
 * every chunk, both ways, after a fixed one-way delay, in order. This kernel has
 * no netem qdisc, so a user-space delay is how round trips get a realistic cost
 * (loopback's are ~0.1 ms; a campus or wide-area link's are milliseconds).
 */
export interface DelayProxy {
  address: string;
  close(): Promise<void>;
}

export async function startDelayProxy(target: string, oneWayMs: number): Promise<DelayProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => {
        setTimeout(() => to.write(chunk), oneWayMs);
      });
      from.on('end', () => setTimeout(() => to.end(), oneWayMs));
    };
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

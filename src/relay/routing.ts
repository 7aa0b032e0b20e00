import { canonicalHost } from '../address.js';
import { KangarooError } from '../errors.js';

/**
 * Where a relay sends an op for a host it is not: straight to the host, unless
 * a route (`--route NAME=HOST:PORT`, NAME may be `*`) sends it through another relay.
 */
export class RoutingTable {
  private routes = new Map<string, string>();

  constructor(specs: string[] = []) {
    for (const spec of specs) this.add(spec);
  }

  add(spec: string): void {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new KangarooError('BAD_ADDRESS', `bad route "${spec}": expected NAME=HOST:PORT`);
    const name = spec.slice(0, eq).trim();
    const via = canonicalHost(spec.slice(eq + 1));
    this.routes.set(name === '*' ? '*' : canonicalHost(name), via);
  }

  nextHop(host: string): string {
    return this.routes.get(host) ?? this.routes.get('*') ?? host;
  }

  entries(): [string, string][] {
    return [...this.routes.entries()];
  }
}

import path from 'node:path';
import { canonicalHost, normalizePath, RemoteFile } from '../address.js';
import { KangarooError } from '../errors.js';
import { NameService } from '../gns/service.js';

/**
 * What a path under the mount names:
 * - `/kangaroo/HOST[:PORT]/PATH`: the remote (spooled) file PATH on HOST;
 * - a name the name service maps: its local file, remote file or grid buffer;
 * - anything else: a plain file in the backing directory (a program's scratch files).
 */
export type Target =
  | { kind: 'root' }
  | { kind: 'hosts' }
  | { kind: 'remote'; file: RemoteFile; isHostRoot: boolean }
  | { kind: 'local'; path: string; mapped: boolean }
  | { kind: 'buffer'; host: string; name: string };

export const REMOTE_DIR = 'kangaroo';

export class Resolver {
  constructor(
    private readonly backing: string,
    private readonly gns: NameService,
  ) {}

  async resolve(p: string): Promise<Target> {
    if (p === '/') return { kind: 'root' };
    if (p === `/${REMOTE_DIR}`) return { kind: 'hosts' };
    if (p.startsWith(`/${REMOTE_DIR}/`)) {
      const rest = p.slice(REMOTE_DIR.length + 2);
      const slash = rest.indexOf('/');
      const hostText = slash < 0 ? rest : rest.slice(0, slash);
      let host: string;
      try {
        host = canonicalHost(hostText);
      } catch {
        throw new KangarooError('NOT_FOUND', `"${hostText}" is not a host name`);
      }
      return { kind: 'remote', file: { host, path: normalizePath(slash < 0 ? '/' : rest.slice(slash)) }, isHostRoot: slash < 0 };
    }
    const mapped = await this.gns.lookup(p);
    if (mapped) {
      const e = mapped.entry;
      if (e.mode === 'local') return { kind: 'local', path: e.local! + mapped.rest, mapped: true };
      if (e.mode === 'remote') {
        return { kind: 'remote', file: { host: e.remote!.host, path: normalizePath(e.remote!.path + mapped.rest) }, isHostRoot: false };
      }
      return { kind: 'buffer', host: e.buffer!.host, name: e.buffer!.name + mapped.rest };
    }
    return { kind: 'local', path: path.join(this.backing, p), mapped: false };
  }
}

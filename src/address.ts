import { KangarooError } from './errors.js';

/** The port a relay listens on when a name gives none. */
export const DEFAULT_PORT = 9094;
export const DEFAULT_RELAY = `127.0.0.1:${DEFAULT_PORT}`;
export const MAX_PATH_BYTES = 4096;

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host`, `host:port`, `[v6]` or `[v6]:port`. The canonical name of a host
 * (used as the key for routing and for "is this me?") always carries the port.
 */
export function parseHostPort(text: string, defaultPort = DEFAULT_PORT): HostPort {
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new KangarooError('BAD_ADDRESS', `bad address "${text}": missing ]`);
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest) {
      if (!rest.startsWith(':')) throw new KangarooError('BAD_ADDRESS', `bad address "${text}"`);
      portText = rest.slice(1);
    }
  } else {
    const colon = s.lastIndexOf(':');
    if (colon >= 0 && s.indexOf(':') !== colon) {
      host = s; // a bare IPv6 address
    } else if (colon >= 0) {
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
    } else {
      host = s;
    }
  }
  if (!host || !/^[A-Za-z0-9._:%-]+$/.test(host)) {
    throw new KangarooError('BAD_ADDRESS', `bad host name in "${text}"`);
  }
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw new KangarooError('BAD_ADDRESS', `bad port in "${text}"`);
    }
    port = Number(portText);
  }
  // host names are case-insensitive: one canonical spelling keeps routing and spool keys unique
  return { host: host.toLowerCase(), port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The canonical `host:port` name of a host named in a request. */
export function canonicalHost(text: string): string {
  return formatHostPort(parseHostPort(text));
}

export interface RemoteFile {
  host: string; // canonical host:port
  path: string; // normalized, absolute
}

/** Parses `kangaroo://HOST[:PORT]/PATH`. */
export function parseKangarooUrl(url: string, scheme = 'kangaroo'): RemoteFile {
  const prefix = `${scheme}://`;
  if (!url.startsWith(prefix)) throw new KangarooError('BAD_ADDRESS', `"${url}" is not a ${prefix}HOST/PATH name`);
  const rest = url.slice(prefix.length);
  const slash = rest.indexOf('/');
  const hostText = slash < 0 ? rest : rest.slice(0, slash);
  if (!hostText) throw new KangarooError('BAD_ADDRESS', `"${url}" names no host`);
  return { host: canonicalHost(hostText), path: normalizePath(slash < 0 ? '/' : rest.slice(slash)) };
}

export function formatKangarooUrl(f: RemoteFile): string {
  return `kangaroo://${f.host}${f.path}`;
}

/**
 * Normalizes a remote path lexically: always absolute, no empty or `.` parts,
 * `..` resolved. A path that climbs above the root is a permission error,
 * never silently clamped: it is an attempt to leave the export.
 */
export function normalizePath(path: string): string {
  if (path.includes('\0')) throw new KangarooError('BAD_PATH', 'path contains a NUL byte');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new KangarooError('BAD_PATH', `path longer than ${MAX_PATH_BYTES} bytes`);
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new KangarooError('PATH_ESCAPE', `path "${path}" climbs above the root`);
      parts.pop();
      continue;
    }
    if (Buffer.byteLength(part) > 255) throw new KangarooError('BAD_PATH', 'a path component is longer than 255 bytes');
    parts.push(part);
  }
  return '/' + parts.join('/');
}

export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

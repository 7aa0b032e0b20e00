import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { KangarooError } from '../errors.js';

/**
 * Who may talk to a relay: clients that prove the shared secret (challenge and
 * response: the relay sends a random challenge, the client answers with
 * HMAC-SHA256(secret, challenge), so the secret never crosses the wire) and/or
 * clients from allowed address ranges. A relay listening only on loopback needs
 * neither; one listening anywhere else refuses to start without one of them.
 */

export interface AccessOptions {
  secret?: Buffer;
  allow?: string[];
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || host.startsWith('127.');
}

export function readSecretFile(file: string): Buffer {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw KangarooError.from(err, `cannot read the secret file ${file}`);
  }
  if (text.length < 16) throw new KangarooError('BAD_ARGUMENT', `the secret in ${file} is shorter than 16 characters; use a long random one (e.g. openssl rand -hex 32)`);
  return Buffer.from(text, 'utf8');
}

export function respond(secret: Buffer, challenge: Buffer): Buffer {
  return crypto.createHmac('sha256', secret).update(challenge).digest();
}

export class AccessPolicy {
  private blockList: net.BlockList | undefined;

  constructor(readonly options: AccessOptions) {
    if (options.allow?.length) {
      this.blockList = new net.BlockList();
      for (const cidr of options.allow) {
        const [addr, bits] = cidr.split('/');
        const type = net.isIPv6(addr ?? '') ? 'ipv6' : 'ipv4';
        if (!addr || !net.isIP(addr)) throw new KangarooError('BAD_ADDRESS', `--allow ${cidr}: not an address range (example: 10.1.0.0/16)`);
        const prefix = bits === undefined ? (type === 'ipv4' ? 32 : 128) : Number(bits);
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) {
          throw new KangarooError('BAD_ADDRESS', `--allow ${cidr}: bad prefix length`);
        }
        this.blockList.addSubnet(addr, prefix, type);
      }
    }
  }

  /** Refuses to run a relay reachable from other machines with no access control at all. */
  checkListen(host: string): void {
    if (isLoopbackHost(host)) return;
    if (!this.options.secret && !this.blockList) {
      throw new KangarooError(
        'PERMISSION',
        `refusing to listen on ${host} without access control: give --secret-file FILE (a shared secret that clients and relays also use) and/or --allow CIDR (e.g. --allow 10.1.0.0/16)`,
      );
    }
  }

  get requiresSecret(): boolean {
    return !!this.options.secret;
  }

  /** Whether a connection from this address may go on (to the secret check, if any). */
  addressAllowed(address: string | undefined): boolean {
    if (!this.blockList) return true;
    if (!address) return false;
    const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
    return this.blockList.check(plain, net.isIPv6(plain) ? 'ipv6' : 'ipv4');
  }

  challenge(): Buffer {
    return crypto.randomBytes(32);
  }

  verify(challenge: Buffer, response: Buffer): boolean {
    const want = respond(this.options.secret!, challenge);
    return response.length === want.length && crypto.timingSafeEqual(response, want);
  }
}

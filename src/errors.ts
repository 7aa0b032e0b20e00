/**
 * The one error type of the project. Every failure carries a stable string `code`;
 * the tables below map a code to its POSIX errno (for the FUSE layer and exit
 * statuses) and to its class (transient: retry; permanent: stop and report), each
 * in exactly one place. The code and message travel over the wire unchanged.
 */

export type ErrorClass = 'transient' | 'permanent';

interface CodeInfo {
  errno: string;
  class: ErrorClass;
}

const CODES = {
  // protocol and input
  BAD_FRAME: { errno: 'EPROTO', class: 'permanent' },
  FRAME_TOO_LARGE: { errno: 'EMSGSIZE', class: 'permanent' },
  UNKNOWN_OP: { errno: 'EOPNOTSUPP', class: 'permanent' },
  BAD_ADDRESS: { errno: 'EINVAL', class: 'permanent' },
  BAD_PATH: { errno: 'EINVAL', class: 'permanent' },
  BAD_ARGUMENT: { errno: 'EINVAL', class: 'permanent' },
  // file system results
  PATH_ESCAPE: { errno: 'EACCES', class: 'permanent' },
  PERMISSION: { errno: 'EACCES', class: 'permanent' },
  NOT_FOUND: { errno: 'ENOENT', class: 'permanent' },
  EXISTS: { errno: 'EEXIST', class: 'permanent' },
  NOT_DIR: { errno: 'ENOTDIR', class: 'permanent' },
  IS_DIR: { errno: 'EISDIR', class: 'permanent' },
  NOT_EMPTY: { errno: 'ENOTEMPTY', class: 'permanent' },
  NO_EXPORT: { errno: 'EACCES', class: 'permanent' },
  AUTH: { errno: 'EACCES', class: 'permanent' },
  BUSY: { errno: 'EBUSY', class: 'permanent' },
  LIMIT: { errno: 'EAGAIN', class: 'transient' },
  NO_SPACE: { errno: 'ENOSPC', class: 'transient' },
  FILE_TOO_LARGE: { errno: 'EFBIG', class: 'permanent' },
  IO: { errno: 'EIO', class: 'transient' },
  INTEGRITY: { errno: 'EIO', class: 'transient' },
  // network
  UNREACHABLE: { errno: 'EHOSTUNREACH', class: 'transient' },
  CONNECTION_LOST: { errno: 'ECONNRESET', class: 'transient' },
  TIMEOUT: { errno: 'ETIMEDOUT', class: 'transient' },
  CLOSED: { errno: 'ESHUTDOWN', class: 'transient' },
  // delivery
  DELIVERY_BLOCKED: { errno: 'EIO', class: 'permanent' },
  ABORTED: { errno: 'ECANCELED', class: 'transient' },
  INTERNAL: { errno: 'EIO', class: 'transient' },
  SPOOL_MOVED: { errno: 'EAGAIN', class: 'transient' },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(CODES, code);
}

/** Node system error codes (from fs and net) and what they mean to us. */
const SYSTEM_CODES: Record<string, ErrorCode> = {
  ENOENT: 'NOT_FOUND',
  EEXIST: 'EXISTS',
  ENOTDIR: 'NOT_DIR',
  EISDIR: 'IS_DIR',
  ENOTEMPTY: 'NOT_EMPTY',
  EACCES: 'PERMISSION',
  EPERM: 'PERMISSION',
  EROFS: 'PERMISSION',
  ENOSPC: 'NO_SPACE',
  EDQUOT: 'NO_SPACE',
  EFBIG: 'FILE_TOO_LARGE',
  EMLINK: 'PERMISSION',
  EXDEV: 'BAD_ARGUMENT',
  EIO: 'IO',
  ECONNREFUSED: 'UNREACHABLE',
  EHOSTUNREACH: 'UNREACHABLE',
  ENETUNREACH: 'UNREACHABLE',
  ENOTFOUND: 'UNREACHABLE',
  EAI_AGAIN: 'UNREACHABLE',
  ECONNRESET: 'CONNECTION_LOST',
  EPIPE: 'CONNECTION_LOST',
  ECONNABORTED: 'CONNECTION_LOST',
  ETIMEDOUT: 'TIMEOUT',
  ENAMETOOLONG: 'BAD_PATH',
  ELOOP: 'PATH_ESCAPE',
  EINVAL: 'BAD_ARGUMENT',
};

export class KangarooError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KangarooError';
    this.code = code;
  }

  get errno(): string {
    return CODES[this.code].errno;
  }

  get errorClass(): ErrorClass {
    return CODES[this.code].class;
  }

  get transient(): boolean {
    return this.errorClass === 'transient';
  }

  /** Wraps anything thrown (a Node system error, a plain Error) into a KangarooError. */
  static from(err: unknown, context?: string): KangarooError {
    if (err instanceof KangarooError) return err;
    const sys = (err as NodeJS.ErrnoException | undefined)?.code;
    const code = (sys && SYSTEM_CODES[sys]) || 'INTERNAL';
    const text = err instanceof Error ? err.message : String(err);
    return new KangarooError(code, context ? `${context}: ${text}` : text, { cause: err });
  }

  /** Rebuilds an error received over the wire; an unknown code becomes INTERNAL. */
  static fromWire(code: string, message: string): KangarooError {
    return new KangarooError(isErrorCode(code) ? code : 'INTERNAL', message);
  }
}

export function errorClassOf(code: ErrorCode): ErrorClass {
  return CODES[code].class;
}

export function errnoOf(code: ErrorCode): string {
  return CODES[code].errno;
}

// The parts of fuse-native 2.2.6 the mount uses (the package ships no types).
declare module 'fuse-native' {
  type Cb<T = void> = T extends void ? (err: number) => void : (err: number, value?: T) => void;
  export interface Stat {
    mtime: Date;
    atime: Date;
    ctime: Date;
    size: number;
    mode: number;
    uid: number;
    gid: number;
    nlink?: number;
    blocks?: number;
    blksize?: number;
    ino?: number;
  }
  export interface Ops {
    init?(cb: (err: number) => void): void;
    getattr?(path: string, cb: (err: number, stat?: Stat) => void): void;
    fgetattr?(path: string, fd: number, cb: (err: number, stat?: Stat) => void): void;
    access?(path: string, mode: number, cb: (err: number) => void): void;
    statfs?(path: string, cb: (err: number, st?: Record<string, number>) => void): void;
    readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void;
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
    create?(path: string, mode: number, cb: (err: number, fd?: number) => void): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    flush?(path: string, fd: number, cb: (err: number) => void): void;
    fsync?(path: string, datasync: boolean, fd: number, cb: (err: number) => void): void;
    release?(path: string, fd: number, cb: (err: number) => void): void;
    truncate?(path: string, size: number, cb: (err: number) => void): void;
    ftruncate?(path: string, fd: number, size: number, cb: (err: number) => void): void;
    unlink?(path: string, cb: (err: number) => void): void;
    rename?(src: string, dest: string, cb: (err: number) => void): void;
    mkdir?(path: string, mode: number, cb: (err: number) => void): void;
    rmdir?(path: string, cb: (err: number) => void): void;
    /** Times in milliseconds since the epoch (fuse-native 2.2.6 passes numbers). */
    utimens?(path: string, atime: number, mtime: number, cb: (err: number) => void): void;
    chmod?(path: string, mode: number, cb: (err: number) => void): void;
    chown?(path: string, uid: number, gid: number, cb: (err: number) => void): void;
    symlink?(src: string, dest: string, cb: (err: number) => void): void;
    link?(src: string, dest: string, cb: (err: number) => void): void;
    readlink?(path: string, cb: (err: number, target?: string) => void): void;
    mknod?(path: string, mode: number, dev: number, cb: (err: number) => void): void;
  }
  export interface FuseOptions {
    timeout?: number | false;
    force?: boolean;
    mkdir?: boolean;
    fsname?: string;
    subtype?: string;
    autoCache?: boolean;
    kernelCache?: boolean;
    debug?: boolean;
    attrTimeout?: number;
    entryTimeout?: number;
    maxRead?: number;
  }
  export default class Fuse {
    constructor(mnt: string, ops: Ops, opts?: FuseOptions);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static ENOENT: number;
    static EIO: number;
  }
  export type { Cb };
}

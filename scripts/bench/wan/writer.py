#!/usr/bin/env python3
"""The program whose output has to reach the remote host, in the two shapes of the
Kangaroo paper's experiments:

  burst FILE MIB        write MIB MiB as fast as possible, then close (figures 10-11)
  burst-fsync FILE MIB  the same, with fsync before close: what close promises on a
                        kangaroo mount (safely spooled), as a baseline on local disk
  overlap DIR N MIB MS  N times: compute for MS ms, then write an output of MIB MiB
                        (figures 12-13: an image-enhancement-like loop)

It writes plain files with plain write() and close(), as an unmodified program does,
and prints one JSON line: wall time (close included), the size and sha256 of every
file, so the harness can check what arrives, and per file when (ms from the start)
its open began and returned, its last write returned, its fsync (if any) and its
close returned, so the time a mount spends in each call can be told apart. Every 1 MiB block carries the file and
block number, so a block delivered at the wrong place changes the checksum. An I/O
error is printed (errno and message) and the program exits 1, as a real one would.
"""
import hashlib
import json
import os
import sys
import time

MIB = 1 << 20
# the same bytes in every run, so the harness knows what a complete file holds
# even when the program failed before it could say (expected.ts computes them too)
BASE = hashlib.shake_256(b"kangaroo-wan").digest(MIB)


def block(tag, i):
    head = f"{tag}:{i}:".encode()
    return head + BASE[len(head):]


def write_file(path, mib, tag, t0, sync=False):
    ms = lambda: round((time.perf_counter() - t0) * 1000, 2)
    h = hashlib.sha256()
    t = {"open": ms()}
    # unbuffered: each 1 MiB block is one write(2), and close(2) is the file's last call
    f = open(path, "wb", buffering=0)
    try:
        t["opened"] = ms()
        for i in range(mib):
            b = block(tag, i)
            h.update(b)
            f.write(b)
            if (i + 1) % 100 == 0:
                t[f"{i + 1}MiB"] = ms()  # a stall tells itself apart from a slow, steady write
        t["written"] = ms()
        if sync:
            os.fsync(f.fileno())
            t["synced"] = ms()
    finally:
        f.close()
    t["closed"] = ms()
    return {"name": os.path.basename(path), "bytes": mib * MIB, "sha256": h.hexdigest(), "t": t}


def busy(ms):
    end = time.perf_counter() + ms / 1000
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def main():
    t0 = time.perf_counter()
    p0 = time.process_time()
    # wall clock of t0: the harness places the program's own times on its timeline with it
    epoch_ms = time.time() * 1000
    files = []
    cpu_ms = 0.0
    try:
        if sys.argv[1] in ("burst", "burst-fsync"):
            files.append(write_file(sys.argv[2], int(sys.argv[3]), "burst", t0, sys.argv[1] == "burst-fsync"))
        elif sys.argv[1] == "overlap":
            out, n, mib, ms = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
            for k in range(n):
                c0 = time.perf_counter()
                busy(ms)
                cpu_ms += (time.perf_counter() - c0) * 1000
                files.append(write_file(os.path.join(out, f"out-{k:02d}.bin"), mib, f"out{k}", t0))
        else:
            raise SystemExit(f"unknown mode {sys.argv[1]}")
    except OSError as e:
        print(json.dumps({"error": f"{e.strerror or e} (errno {e.errno})", "ms": (time.perf_counter() - t0) * 1000, "epochMs": epoch_ms, "files": files}))
        sys.stdout.flush()
        sys.exit(1)
    # cpuMs: the compute bursts; processCpuMs: all the CPU the program used (its output is made and hashed too)
    print(json.dumps({"ms": (time.perf_counter() - t0) * 1000, "cpuMs": cpu_ms, "processCpuMs": (time.process_time() - p0) * 1000, "epochMs": epoch_ms, "files": files}))


main()

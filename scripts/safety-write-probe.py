#!/usr/bin/env python3
"""How long one safety-record write takes on this disk, two ways.

Compares the two ways of making a small record durable that
node/storage/src/safety.rs chose between:

  rename:   write <file>.tmp, fsync, rename over <file>, fsync the directory
  in place: pwrite over a slot of a file whose blocks are already written,
            fdatasync (twice, as the store writes slot A then slot B)

quietly, then with a writer beside it that behaves like RocksDB under load
(32 MiB files written and fsynced one after another, plus a 300 KB synced
append every 100 ms). Usage: scripts/safety-write-probe.py [DIR] [--load]
(DIR defaults to a new directory under /tmp; it is removed afterwards).
"""
import os
import shutil
import sys
import tempfile
import threading
import time

RECORD = os.urandom(700)  # about a SafetyData with its certificates
SLOT = 64 << 10


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    base = args[0] if args else None
    d = tempfile.mkdtemp(prefix="safety-probe-", dir=base)
    try:
        run(d, "--load" in sys.argv)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run(d, load):
    stop = threading.Event()

    def tables():
        buf = os.urandom(1 << 20)
        i = 0
        while not stop.is_set():
            fd = os.open(f"{d}/sst{i % 4}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            for _ in range(32):
                if stop.is_set():
                    break
                os.write(fd, buf)
            os.fsync(fd)
            os.close(fd)
            i += 1

    def wal():
        fd = os.open(f"{d}/wal", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        buf = os.urandom(300_000)
        while not stop.is_set():
            os.write(fd, buf)
            os.fdatasync(fd)
            time.sleep(0.1)
        os.close(fd)

    def by_rename():
        started = time.perf_counter()
        fd = os.open(f"{d}/safety.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, RECORD)
        os.fsync(fd)
        os.close(fd)
        os.rename(f"{d}/safety.tmp", f"{d}/safety")
        dfd = os.open(d, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        return time.perf_counter() - started

    slots = os.open(f"{d}/slots", os.O_RDWR | os.O_CREAT)
    os.pwrite(slots, b"\0" * (2 * SLOT), 0)
    os.fsync(slots)

    def in_place():
        started = time.perf_counter()
        for offset in (0, SLOT):
            os.pwrite(slots, RECORD, offset)
            os.fdatasync(slots)
        return time.perf_counter() - started

    writers = []
    if load:
        writers = [threading.Thread(target=tables), threading.Thread(target=wal)]
        for w in writers:
            w.start()
        time.sleep(2)
    renamed, placed = [], []
    for _ in range(150):
        renamed.append(by_rename())
        placed.append(in_place())
        time.sleep(0.03)
    stop.set()
    for w in writers:
        w.join()
    os.close(slots)
    print("with a RocksDB-like writer beside it" if load else "quiet disk")
    print(f"  rename + directory fsync:     {summary(renamed)}")
    print(f"  in place, two fdatasyncs:     {summary(placed)}")


def summary(times):
    times = sorted(t * 1e3 for t in times)
    at = lambda q: times[min(len(times) - 1, int(len(times) * q))]
    return f"p50 {at(0.5):6.1f} ms  p90 {at(0.9):6.1f} ms  p99 {at(0.99):6.1f} ms  max {times[-1]:6.1f} ms"


if __name__ == "__main__":
    main()

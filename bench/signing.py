#!/usr/bin/env python3
"""What signing results costs (README, "Signed results"): keyed hashes' speed on one core, and saving
and loading a large array and many small results with and without a key.

    python3 bench/signing.py speed                         # GB/s of HMAC-SHA256, keyed BLAKE2b/2s, XXH3
    python3 bench/signing.py store --mb 200 --repeat 5     # save / load / mmap load of one array
    python3 bench/signing.py small -n 20000                # save + load of small pickles, per result

Runs in this process with the taskflow it imports (run from the repository root, or with
PYTHONPATH=.); the store goes in --dir (default: a temp folder on /dev/shm, so the disk's noise is
left out and what is measured is the work per byte). Variants are interleaved; medians are reported.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def speed(args: argparse.Namespace) -> None:
    data = memoryview(os.urandom(args.mb << 20))
    key = os.urandom(32)
    runs = {"hmac-sha256": lambda: hmac.new(key, data, "sha256").digest(),
            "blake2b keyed": lambda: hashlib.blake2b(data, key=key).digest(),
            "blake2s keyed": lambda: hashlib.blake2s(data, key=key).digest()}
    try:
        import xxhash
        runs["xxh3_64 (checksum, not a MAC)"] = lambda: xxhash.xxh3_64_intdigest(data)
    except ImportError:
        print("xxhash not installed: left out")
    for name, run in runs.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        best = statistics.median(times)
        print(f"{name:32s} {args.mb / 1024 / best:6.2f} GB/s ({best * 1000:.0f} ms for {args.mb} MB)")


def _stores(folder: str):
    from taskflow.signing import new_key
    from taskflow.stores.folder import FolderStore

    key = new_key(os.path.join(folder, "bench.key"))
    plain, signed = FolderStore(os.path.join(folder, "plain")), FolderStore(os.path.join(folder, "signed"))
    plain.use_key(None)
    signed.use_key(key)
    for s in (plain, signed):
        s.ensure()
    return {"unsigned": plain, "signed": signed}


def store(args: argparse.Namespace) -> None:
    import numpy as np

    value = np.random.default_rng(0).random((args.mb << 20) // 8)
    folder = tempfile.mkdtemp(dir=args.dir)
    try:
        stores = _stores(folder)
        times: dict[tuple[str, str], list[float]] = {}
        for i in range(args.repeat):
            for label, s in stores.items():
                h = f"{i:032x}"
                for step, run in (("save", lambda: s.save_result(h, value, {"name": "bench"})),
                                  ("load", lambda: s.load_value(h)),
                                  ("mmap load", lambda: float(s.load_value(h, mmap=True)[-1]))):
                    start = time.perf_counter()
                    run()
                    times.setdefault((label, step), []).append(time.perf_counter() - start)
                s.remove_result(h)
        print(f"{args.mb} MB float64 array, {args.repeat} runs, medians, in {args.dir}")
        for step in ("save", "load", "mmap load"):
            plain, signed = (statistics.median(times[(label, step)]) for label in ("unsigned", "signed"))
            print(f"  {step:10s} unsigned {plain * 1000:7.0f} ms   signed {signed * 1000:7.0f} ms   "
                  f"+{(signed - plain) * 1000:.0f} ms ({signed / plain:.2f}x)")
    finally:
        shutil.rmtree(folder)


def small(args: argparse.Namespace) -> None:
    folder = tempfile.mkdtemp(dir=args.dir)
    try:
        stores = _stores(folder)
        per: dict[str, list[float]] = {label: [] for label in stores}
        for r in range(args.repeat):
            for label, s in stores.items():
                start = time.perf_counter()
                for i in range(args.n):
                    h = f"{r:08x}{i:024x}"
                    s.save_result(h, {"i": i, "name": "x" * 20}, {"name": "bench"})
                    s.load_value(h)
                per[label].append((time.perf_counter() - start) / args.n)
        print(f"{args.n} small results saved and loaded, {args.repeat} runs, medians, in {args.dir}")
        plain, signed = (statistics.median(per[label]) for label in ("unsigned", "signed"))
        print(f"  per result: unsigned {plain * 1e6:.1f} µs   signed {signed * 1e6:.1f} µs   "
              f"+{(signed - plain) * 1e6:.1f} µs")
    finally:
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    for name, default_mb in (("speed", 200), ("store", 200), ("small", 0)):
        p = sub.add_parser(name)
        p.add_argument("--mb", type=int, default=default_mb)
        p.add_argument("--repeat", type=int, default=5)
        p.add_argument("-n", type=int, default=5000)
        p.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    {"speed": speed, "store": store, "small": small}[args.what](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What checking large results costs: checksum speeds, and saving and loading a large array.

    python3 bench/checksum.py speed                    # GB/s of each checksum, 1 / 50 / 400 MB, one core
    python3 bench/checksum.py chunks                   # write + checksum of 400 MB, whole or chunk by chunk
    python3 bench/checksum.py store --code 8471e60 --code worktree     # save / load 400 MB, before and after
    python3 bench/checksum.py store --code worktree --block xxhash     # the same without the xxhash package
    python3 bench/checksum.py report out.json                          # the table of a `store --json out.json`

`speed` and `chunks` run in this process (numpy needed; checksum packages
that are not installed are left out, saying so). `store` runs every
measurement in a fresh process, under `/usr/bin/time -v` for the peak RSS,
with the taskflow code of each `--code` (a commit extracted with `git
archive`, or `worktree` for the working tree as it is) first on PYTHONPATH;
the variants are interleaved, and medians of `--repeat` runs are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

MB = 1 << 20
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- checksum speeds

def candidates() -> tuple[dict, list[str]]:
    """name -> function of a buffer, for each checksum whose package imports here; and what is missing."""
    found = {"zlib.crc32": zlib.crc32}
    missing = []
    try:
        import crc32c
        found[f"crc32c {crc32c.__version__} (CRC32C, hardware: {crc32c.hardware_based})"] = crc32c.crc32c
    except ImportError:
        missing.append("crc32c")
    try:
        import google_crc32c
        # It takes bytes only (not a memoryview of an array): measured on a bytes copy, made untimed.
        found[f"google-crc32c (CRC32C, {google_crc32c.implementation}; bytes only)"] = google_crc32c.value
    except ImportError:
        missing.append("google-crc32c")
    try:
        import xxhash
        found[f"xxhash {xxhash.VERSION} XXH3_64"] = xxhash.xxh3_64_intdigest
        found[f"xxhash {xxhash.VERSION} XXH3_128"] = xxhash.xxh3_128_intdigest
    except ImportError:
        missing.append("xxhash")
    return found, missing


def timed(fn, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def speed(args: argparse.Namespace) -> None:
    import numpy as np

    found, missing = candidates()
    if missing:
        print(f"not installed, left out: {', '.join(missing)}", file=sys.stderr)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        array = np.random.default_rng(0).random(size * MB // 8)
        view = array.data.cast("B")
        as_bytes = None
        target = np.empty_like(array)
        # Small buffers are checked many times per timing, so that the timer's resolution does not matter.
        reps = max(1, 200 // size)
        copy = statistics.median(timed(lambda t=target, a=array: np.copyto(t, a), reps) for _ in range(args.repeat))
        rows.append((size, "memory copy (np.copyto, for scale)", copy))
        for name, fn in found.items():
            if "bytes only" in name:
                as_bytes = as_bytes or array.tobytes()
                buf = as_bytes
            else:
                buf = view
            fn(buf)
            runs = [timed(lambda f=fn, b=buf: f(b), reps) for _ in range(args.repeat)]
            rows.append((size, name, statistics.median(runs)))
        del as_bytes
    print(f"| checksum | {' | '.join(f'{s} MB' for s in sizes)} |")
    print("|---|" + "---|" * len(sizes))
    for name in dict.fromkeys(r[1] for r in rows):
        cells = []
        for size in sizes:
            t = next(r[2] for r in rows if r[0] == size and r[1] == name)
            cells.append(f"{size * MB / t / 1e9:.1f} GB/s ({t * 1e3:.3g} ms)")
        print(f"| {name} | {' | '.join(cells)} |")


# ---------------------------------------------------------------- whole or chunk by chunk

def chunks(args: argparse.Namespace) -> None:
    """Checksum then write 400 MB in one pass each, against checksum and write chunk by chunk."""
    import numpy as np

    hashers = {"zlib.crc32": None}
    try:
        import xxhash
        hashers["XXH3_64"] = xxhash.xxh3_64
    except ImportError:
        print("xxhash not installed: only zlib.crc32", file=sys.stderr)
    array = np.random.default_rng(0).random(args.mb * MB // 8)
    view = array.data.cast("B")
    folder = tempfile.mkdtemp(dir=args.workdir)
    path = os.path.join(folder, "out")

    def write(pattern: str, algo: str, chunk: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if pattern == "whole":
                if hashers[algo] is None:
                    zlib.crc32(view)
                else:
                    hashers[algo](view).intdigest()
                done = 0
                while done < view.nbytes:
                    done += os.write(fd, view[done:])
            else:
                crc, h = 0, hashers[algo]() if hashers[algo] else None
                for start in range(0, view.nbytes, chunk):
                    piece = view[start:start + chunk]
                    if h is None:
                        crc = zlib.crc32(piece, crc)
                    else:
                        h.update(piece)
                    done = 0
                    while done < piece.nbytes:
                        done += os.write(fd, piece[done:])
        finally:
            os.close(fd)
            os.unlink(path)

    variants = [(p, a, c) for a in hashers for p, c in
                [("whole", 0)] + [("chunked", int(k) * 1024) for k in args.chunks_kb.split(",")]]
    times: dict = {v: [] for v in variants}
    for i in range(args.repeat):
        for v in variants[i % len(variants):] + variants[:i % len(variants)]:
            start = time.perf_counter()
            write(*v)
            times[v].append(time.perf_counter() - start)
    shutil.rmtree(folder)
    print(f"| {args.mb} MB into {args.workdir} | median of {args.repeat} |")
    print("|---|---|")
    for (pattern, algo, chunk), ts in times.items():
        label = f"{algo}, {'whole buffer, then one write' if pattern == 'whole' else f'chunks of {chunk // 1024} KB'}"
        print(f"| {label} | {statistics.median(ts) * 1e3:.0f} ms |")


# ---------------------------------------------------------------- saving and loading through taskflow

CHILD = r"""
import json, os, sys, time
block = os.environ.get("BENCH_BLOCK")
if block:
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in block.split(","):
                raise ImportError(f"{name} blocked by the benchmark")
    sys.meta_path.insert(0, Blocker())
import numpy as np
from taskflow import encoding
from taskflow.stores import open_store as Store

what, folder, mb, layout = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def make():
    n = mb * (1 << 20) // 8
    if layout == "strided":  # every row's first 1,000 of 1,250 numbers: not contiguous
        return np.random.default_rng(0).random((n // 1000, 1250))[:, :1000]
    return np.random.default_rng(0).random(n)


store = Store(folder)
out = {}
if what == "save":
    arr = make()
    start = time.perf_counter()
    store.save_payload("ab" * 16, encoding.Payload(arr, {"name": "bench.big"}))
    out["seconds"] = time.perf_counter() - start
elif what == "array":  # the same process without the save: its peak RSS is the baseline
    arr = make()
else:
    start = time.perf_counter()
    value = store.load_value("ab" * 16, mmap=what == "mmap")
    out["seconds"] = time.perf_counter() - start
    out["sum"] = float(value[::100000].sum())
if what != "array":
    with open(store.result_path("ab" * 16), "rb") as f:
        head = f.read(200)
    out["checksum"] = "xxh3_64" if b'"checksum":"xxh3_64:' in head else "crc32" if b'"crc32":' in head else "?"
print(json.dumps(out))
"""


def pin(code: str, root: str) -> str:
    dest = os.path.join(root, "code-" + re.sub(r"\W", "_", code))
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    if code == "worktree":
        shutil.copytree(os.path.join(REPO, "taskflow"), os.path.join(dest, "taskflow"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        archive = subprocess.run(["git", "-C", REPO, "archive", code, "taskflow"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", dest], check=True, stdout=subprocess.DEVNULL)
    return dest


def child(what: str, code_dir: str, folder: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=code_dir, BENCH_BLOCK=args.block)
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", CHILD, what, folder, str(args.mb),
                           args.layout],
                          capture_output=True, text=True, env=env, cwd=code_dir)
    if proc.returncode != 0:
        sys.exit(f"{what} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["rss_mb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1]) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    result["wall"] = int(wall[1] or 0) * 3600 + int(wall[2]) * 60 + float(wall[3])
    return result


def store(args: argparse.Namespace) -> None:
    root = tempfile.mkdtemp(dir=args.workdir, prefix="tfck-")
    try:
        variants = [(code, pin(code, root)) for code in args.code]
        runs: dict = {code: {k: [] for k in ("array", "save", "load", "mmap")} for code in args.code}
        for i in range(args.repeat):
            for code, code_dir in variants[i % len(variants):] + variants[:i % len(variants)]:
                folder = os.path.join(root, "store")
                shutil.rmtree(folder, ignore_errors=True)
                for what in ("array", "save", "load", "mmap"):
                    runs[code][what].append(child(what, code_dir, folder, args))
                shutil.rmtree(folder)
        data = {"mb": args.mb, "layout": args.layout, "workdir": args.workdir, "block": args.block,
                "repeat": args.repeat, "runs": runs}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(data, f, indent=1)
        print_store(data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def print_store(data: dict) -> None:
    """The table of a `store` run: medians, the best run in brackets for times."""
    def med(rs: list, key: str) -> float:
        return statistics.median(r[key] for r in rs)

    def ms(rs: list, digits: int = 0) -> str:
        return f"{med(rs, 'seconds') * 1e3:.{digits}f} ms (best {min(r['seconds'] for r in rs) * 1e3:.{digits}f})"

    print(f"{data['mb']} MB float64 array ({data['layout']}), store in {data['workdir']}, medians of "
          f"{len(next(iter(data['runs'].values()))['save'])}" + (f", {data['block']} blocked" if data["block"] else ""))
    print("| code | checksum | save | save: peak RSS (array alone) | checked load | load: peak RSS | mmap load |")
    print("|---|---|---|---|---|---|---|")
    for code, r in data["runs"].items():
        print(f"| {code} | {r['save'][0]['checksum']} | {ms(r['save'])} "
              f"| {med(r['save'], 'rss_mb'):.0f} MB ({med(r['array'], 'rss_mb'):.0f} MB) "
              f"| {ms(r['load'])} | {med(r['load'], 'rss_mb'):.0f} MB | {ms(r['mmap'], 2)} |")


def report(args: argparse.Namespace) -> None:
    for path in args.files:
        with open(path) as f:
            print_store(json.load(f))
        print()


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("speed", help="GB/s of each checksum on one core")
    p.add_argument("--sizes", default="1,50,400", help="buffer sizes in MB (default 1,50,400)")
    p.add_argument("--repeat", type=int, default=7)
    p.set_defaults(run=speed)
    p = sub.add_parser("chunks", help="checksum and write, whole or chunk by chunk")
    p.add_argument("--mb", type=int, default=400)
    p.add_argument("--chunks-kb", default="256,1024,4096")
    p.add_argument("--workdir", default="/dev/shm")
    p.add_argument("--repeat", type=int, default=7)
    p.set_defaults(run=chunks)
    p = sub.add_parser("store", help="save and load a large array through taskflow, one process each")
    p.add_argument("--code", action="append", help="a commit, or `worktree` (repeatable; default worktree)")
    p.add_argument("--mb", type=int, default=400)
    p.add_argument("--workdir", default="/tmp", help="where the store goes (default /tmp: the disk)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--layout", choices=["c", "strided"], default="c",
                   help="c: a contiguous array; strided: a view of 4/5 of each row of a larger one")
    p.add_argument("--block", default="", help="packages the child processes cannot import (e.g. xxhash)")
    p.add_argument("--json", help="write every run here")
    p.set_defaults(run=store)
    p = sub.add_parser("report", help="print the tables of `store --json` files again")
    p.add_argument("files", nargs="+")
    p.set_defaults(run=report)
    args = parser.parse_args()
    if getattr(args, "code", "unset") is None:
        args.code = ["worktree"]
    print(f"{os.cpu_count()} cores, {load_average()} before", file=sys.stderr)
    args.run(args)
    print(f"{load_average()} after", file=sys.stderr)


if __name__ == "__main__":
    main()

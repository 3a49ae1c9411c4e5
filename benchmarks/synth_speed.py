"""Synthetic benchmark generation speed: studies per second, PNG writing included.

    python benchmarks/synth_speed.py [--num-studies 1000] [--workers 0 2] [--views 2]

Writes benchmarks/results/synth_speed.json and prints a table. Target: >= 200 studies/s with
2 views at 256 px on 2 cores (workers=2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from xrg.data.jsonl import write_atomic
from xrg.data.synthetic import generate_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-studies", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs (the machine is shared)")
    args = parser.parse_args()

    rows = []
    for workers in args.workers:
        times, cpu = [], []
        for repeat in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                start, cpu_start = time.perf_counter(), _cpu_seconds()
                generate_benchmark(Path(tmp) / "b", args.num_studies, seed=repeat, image_size=args.image_size,
                                   views=args.views, workers=workers)
                times.append(time.perf_counter() - start)
                cpu.append(_cpu_seconds() - cpu_start)
        best = min(times)
        cpu_ms = 1000 * min(cpu) / args.num_studies
        rows.append({"workers": workers, "num_studies": args.num_studies, "views": args.views,
                     "image_size": args.image_size, "seconds": round(best, 3),
                     "studies_per_s": round(args.num_studies / best, 1),
                     # CPU time is what the machine's other users cannot distort; it bounds the
                     # rate on idle cores: max(workers, 1) / cpu seconds per study.
                     "cpu_ms_per_study": round(cpu_ms, 3),
                     "idle_core_studies_per_s": round(1000 * max(workers, 1) / cpu_ms, 1)})

    result = {"benchmark": "synth_speed", "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "load_avg": os.getloadavg(), "rows": rows}
    out = Path(__file__).resolve().parent / "results" / "synth_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(result, indent=1) + "\n")
    print(f"{'workers':>8} {'studies':>8} {'views':>6} {'px':>5} {'seconds':>8} {'studies/s':>10} "
          f"{'cpu ms/study':>13} {'idle-core studies/s':>20}")
    for r in rows:
        print(f"{r['workers']:>8} {r['num_studies']:>8} {r['views']:>6} {r['image_size']:>5} {r['seconds']:>8} "
              f"{r['studies_per_s']:>10} {r['cpu_ms_per_study']:>13} {r['idle_core_studies_per_s']:>20}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"wrote {out}")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main()

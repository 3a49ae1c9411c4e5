"""Report-index build and query time for 2,000 and 200,000 reports (synthetic embeddings).

    python benchmarks/retrieval_speed.py [--sizes 2000 200000] [--dim 384] [--queries 256] [--k 3]

Embeddings are random unit vectors of MiniLM's width (384): build and search cost depends on
the count and width only, not on what the vectors mean. Each backend is timed on the same
vectors: exact torch search, and faiss "Flat" (exact) plus any `--approximate` faiss indexes
(e.g. HNSW32, reported with recall@k against the exact answer) when faiss is installed. Writes benchmarks/results/retrieval_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from xrg.blocks.retrieval.index import ReportIndex, faiss_available
from xrg.data.jsonl import write_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def _time(function, repeats: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench(size: int, dim: int, queries: int, k: int, approximate: list[str]) -> list[dict]:
    generator = torch.Generator().manual_seed(size)
    embeddings = torch.randn(size, dim, generator=generator)
    ids = [f"s{i}" for i in range(size)]
    reports = [""] * size
    query = embeddings[:queries] + 0.1 * torch.randn(queries, dim, generator=generator)
    exclude = ids[:queries]
    configs = [("torch", "Flat")]
    if faiss_available():
        configs += [("faiss", "Flat")] + [("faiss", spec) for spec in approximate]
    rows, exact = [], None
    for backend, spec in configs:
        build_s, index = _time(lambda b=backend, s=spec: ReportIndex(embeddings, ids, reports, backend=b, faiss_index=s),
                               repeats=1 if spec.startswith("HNSW") else 3)
        query_s, found = _time(lambda i=index: i.search(query, k, exclude))
        exact = found if exact is None else exact
        hits = sum(len(set(a) & set(b)) for a, b in zip(found.indices.tolist(), exact.indices.tolist()))
        rows.append({"reports": size, "dim": dim, "backend": backend, "index": spec, "build_s": build_s,
                     "query_s": query_s, "queries": queries, "ms_per_query": 1000 * query_s / queries,
                     "recall_vs_exact": hits / (queries * k)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 200000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--approximate", nargs="*", default=[], help='faiss factory strings, e.g. HNSW32')
    args = parser.parse_args()
    rows = [row for size in args.sizes for row in bench(size, args.dim, args.queries, args.k, args.approximate)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "retrieval_speed.json"
    meta = {"torch_threads": torch.get_num_threads(), "machine": platform.machine(), "faiss": faiss_available()}
    write_atomic(out, json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"{'reports':>8} {'backend':>7} {'index':>7} {'build s':>9} {'ms/query':>9} {'recall':>7}")
    for r in rows:
        print(f"{r['reports']:>8} {r['backend']:>7} {r['index']:>7} {r['build_s']:>9.3f} "
              f"{r['ms_per_query']:>9.3f} {r['recall_vs_exact']:>7.3f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""An index of training reports: unit-norm embeddings, study ids and report texts.

Search is by cosine similarity. Exact search runs as chunked matrix products in torch, which is
all a corpus of a few thousand reports needs; for hundreds of thousands, faiss (the optional
`faiss` extra, imported only when used) searches the same vectors with an index built from a
faiss factory string ("Flat" stays exact; "HNSW32" or "IVF1024,Flat" trade exactness for speed).
On disk an index is two files: `embeddings.safetensors` and `index.json` (ids, reports, metadata).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from xrg.data.errors import DataError

Backend = Literal["auto", "torch", "faiss"]
FORMAT_VERSION = 1
# Query chunks are sized so one chunk's score matrix stays near 64 MB.
_SCORES_PER_CHUNK = 1 << 24


class Neighbours(NamedTuple):
    indices: torch.Tensor  # [B, k] rows of the index, best first
    scores: torch.Tensor  # [B, k] cosine similarities


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class ReportIndex:
    def __init__(
        self,
        embeddings: torch.Tensor,
        ids: Sequence[str],
        reports: Sequence[str],
        metadata: dict[str, Any] | None = None,
        backend: Backend = "auto",
        faiss_index: str = "Flat",
        normalized: bool = False,
    ) -> None:
        if embeddings.ndim != 2:
            raise ValueError(f"index embeddings must be [N, D], got shape {tuple(embeddings.shape)}")
        if not (len(ids) == len(reports) == embeddings.shape[0]):
            raise ValueError(f"index needs one id and one report per embedding: {embeddings.shape[0]} embeddings, "
                             f"{len(ids)} ids, {len(reports)} reports")
        if embeddings.shape[0] == 0:
            raise ValueError("an index needs at least one report")
        embeddings = embeddings.detach().float().cpu()
        # A reloaded index is already unit-norm; normalising again could move the last bit.
        self.embeddings = (embeddings if normalized else F.normalize(embeddings, dim=-1)).contiguous()
        self.ids = list(ids)
        self.reports = list(reports)
        self.row_of = {study_id: row for row, study_id in enumerate(self.ids)}
        if len(self.row_of) != len(self.ids):
            raise ValueError("index study ids must be unique")
        self.metadata = dict(metadata or {})
        self.faiss_index = faiss_index
        self.backend = self._choose_backend(backend)
        self._faiss = self._build_faiss() if self.backend == "faiss" else None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def _choose_backend(self, backend: Backend) -> str:
        if backend == "auto":
            # Exact search is a BLAS matrix product in torch, faster than faiss "Flat" at every size
            # measured (benchmarks/retrieval_speed.py: 2.4x at 200k reports); faiss pays off only
            # for the approximate indexes (HNSW, IVF...), so `auto` uses it only when one is named.
            return "faiss" if self.faiss_index != "Flat" and faiss_available() else "torch"
        if backend == "faiss" and not faiss_available():
            raise ImportError("backend='faiss' needs faiss: pip install 'xrg[faiss]' (or faiss-cpu)")
        if backend not in ("torch", "faiss"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'faiss', got {backend!r}")
        return backend

    def _build_faiss(self):
        import faiss

        vectors = self.embeddings.numpy()
        index = faiss.index_factory(self.dim, self.faiss_index, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:  # IVF and PQ indexes learn their partition from the data
            index.train(vectors)
        index.add(vectors)
        return index

    # --- search -----------------------------------------------------------------------------
    def search(self, queries: torch.Tensor, k: int, exclude: Sequence[str | None] | None = None) -> Neighbours:
        """The k most similar reports per query, never the query's own study (`exclude[i]`)."""
        queries = F.normalize(queries.detach().float().cpu(), dim=-1)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be [B, {self.dim}] for this index, got {tuple(queries.shape)}")
        if exclude is not None and len(exclude) != queries.shape[0]:
            raise ValueError(f"got {len(exclude)} ids to exclude for {queries.shape[0]} queries")
        excluded = [self.row_of.get(s) if s is not None else None for s in exclude] if exclude else [None] * len(queries)
        k = min(k, len(self) - any(row is not None for row in excluded))
        if k < 1:
            raise ValueError("k must be at least 1 and the index must hold a report besides the query's own")
        if self.backend == "faiss":
            return self._search_faiss(queries, k, excluded)
        return self._search_torch(queries, k, excluded)

    def _search_torch(self, queries: torch.Tensor, k: int, excluded: list[int | None]) -> Neighbours:
        chunk = max(1, _SCORES_PER_CHUNK // len(self))
        indices, scores = [], []
        for start in range(0, queries.shape[0], chunk):
            block = queries[start:start + chunk] @ self.embeddings.T
            for offset, row in enumerate(excluded[start:start + chunk]):
                if row is not None:
                    block[offset, row] = float("-inf")
            top = block.topk(k, dim=1)
            indices.append(top.indices)
            scores.append(top.values)
        return Neighbours(torch.cat(indices), torch.cat(scores))

    def _search_faiss(self, queries: torch.Tensor, k: int, excluded: list[int | None]) -> Neighbours:
        # One extra neighbour, so dropping the query's own study still leaves k.
        found_scores, found = self._faiss.search(queries.numpy(), min(k + 1, len(self)))
        indices = torch.empty(len(queries), k, dtype=torch.long)
        scores = torch.empty(len(queries), k)
        for i, row in enumerate(excluded):
            keep = [j for j in range(found.shape[1]) if found[i, j] != row and found[i, j] >= 0][:k]
            if len(keep) < k:
                raise RuntimeError(f"faiss index {self.faiss_index!r} returned fewer than {k} neighbours; "
                                   "raise its search breadth (nprobe / efSearch) or use 'Flat'")
            indices[i] = torch.from_numpy(found[i, keep])
            scores[i] = torch.from_numpy(found_scores[i, keep])
        return Neighbours(indices, scores)

    # --- files ------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": self.embeddings}, str(directory / "embeddings.safetensors"))
        record = {"format": FORMAT_VERSION, "dim": self.dim, "ids": self.ids, "reports": self.reports,
                  "metadata": self.metadata}
        # index.json last: its presence marks a complete index.
        (directory / "index.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        return directory

    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        return (Path(directory) / "index.json").is_file()

    @classmethod
    def load(cls, directory: str | Path, backend: Backend = "auto", faiss_index: str = "Flat") -> "ReportIndex":
        from safetensors.torch import load_file

        directory = Path(directory)
        record_path, weights_path = directory / "index.json", directory / "embeddings.safetensors"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except OSError as error:
            raise DataError(f"{record_path}: cannot read the report index ({error.strerror})") from error
        except json.JSONDecodeError as error:
            raise DataError(f"{record_path}: invalid JSON at line {error.lineno}: {error.msg}") from error
        for key in ("ids", "reports", "dim"):
            if key not in record:
                raise DataError(f"{record_path}: missing key {key!r}; expected an index written by ReportIndex.save")
        if not weights_path.is_file():
            raise DataError(f"{weights_path}: missing; the index folder holds index.json but no embeddings")
        embeddings = load_file(str(weights_path))["embeddings"]
        if tuple(embeddings.shape) != (len(record["ids"]), record["dim"]):
            raise DataError(f"{weights_path}: embeddings are {tuple(embeddings.shape)}, but index.json lists "
                            f"{len(record['ids'])} reports of width {record['dim']}")
        return cls(embeddings, record["ids"], record["reports"], record.get("metadata"), backend, faiss_index,
                   normalized=True)

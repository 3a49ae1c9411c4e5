"""The retriever contract: query embeddings `[B, D]` -> the k most similar training reports.

A retriever's index is data, not weights: it is built once from the training split, written as
files next to the checkpoint (see `ReportIndex.save`) and reloaded, never stored in the state
dict. What differs between retrievers is the space the index keys live in, which decides who
computes them: report texts the retriever embeds itself, or image embeddings the task computes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch

from xrg.blocks.encoders.base import Block
from xrg.blocks.retrieval.index import Backend, ReportIndex


class Retrieved(NamedTuple):
    ids: list[list[str]]  # [B][k] study ids of the retrieved reports, best first
    reports: list[list[str]]  # [B][k] their texts
    scores: torch.Tensor  # [B, k] cosine similarities


class Retriever(Block, ABC):
    def __init__(self, k: int = 3, backend: Backend = "auto", faiss_index: str = "Flat") -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.backend = backend
        self.faiss_index = faiss_index
        self.index: ReportIndex | None = None

    @property
    @abstractmethod
    def keys_from_images(self) -> bool:
        """True: the task supplies image embeddings of the training studies as keys."""

    @abstractmethod
    def embed_reports(self, reports: list[str]) -> torch.Tensor:
        """Keys from report texts `[N, D]` (retrievers whose keys are texts)."""

    def describe(self) -> dict[str, Any]:
        """Metadata saved with the index, checked when it is loaded back."""
        return {"retriever": type(self).__qualname__}

    # --- building, saving, loading ------------------------------------------------------------
    def build(self, ids: Sequence[str], reports: Sequence[str], image_keys: torch.Tensor | None = None,
              metadata: dict[str, Any] | None = None) -> ReportIndex:
        """`metadata`: what else the keys depend on (e.g. a fingerprint of the image weights)."""
        if self.keys_from_images:
            if image_keys is None:
                raise ValueError(f"{type(self).__name__} indexes image embeddings; pass image_keys")
            keys = image_keys
        else:
            keys = self.embed_reports(list(reports))
        self.index = ReportIndex(keys, ids, reports, self.describe() | (metadata or {}), self.backend, self.faiss_index)
        return self.index

    def save_index(self, directory: str | Path) -> Path:
        if self.index is None:
            raise RuntimeError("no index to save: build() or load_index() first")
        return self.index.save(directory)

    def load_index(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> ReportIndex:
        """Load a saved index, refusing one built by another retriever or for other `metadata`."""
        index = ReportIndex.load(directory, self.backend, self.faiss_index)
        expected = self.describe() | (metadata or {})
        if index.metadata != expected:
            raise ValueError(f"{directory}: index was built by {index.metadata}, this retriever is {expected}")
        self.index = index
        return index

    # --- the contract ---------------------------------------------------------------------------
    def forward(self, queries: torch.Tensor, exclude_ids: Sequence[str | None] | None = None,
                k: int | None = None) -> Retrieved:
        """Top-k reports per query; `exclude_ids[i]` (the query's own study) is never returned."""
        if self.index is None:
            raise RuntimeError("the retriever has no index yet: build() or load_index() first")
        found = self.index.search(queries, k or self.k, exclude_ids)
        rows = found.indices.tolist()
        ids = [[self.index.ids[j] for j in row] for row in rows]
        reports = [[self.index.reports[j] for j in row] for row in rows]
        return Retrieved(ids, reports, found.scores)

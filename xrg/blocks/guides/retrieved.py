"""RadAlign's retrieval-augmented prompt: the k most similar training reports as a prompt field.

The query is the study's embedding from an earlier guide (`query: concepts`, RadAlign's aligned
space) or, with `query: null`, the image encoder's pooled feature. The guide owns its retriever's
index: built from the training split before the first step that needs it, saved next to the
checkpoint (or in `index_dir`), rebuilt only when the weights that compute its keys change. A
study never retrieves itself: in training its own report would be the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from xrg.blocks.guides.base import Encoded, Guidance, Guide
from xrg.blocks.retrieval.base import Retriever
from xrg.blocks.retrieval.lifecycle import ensure_index

if TYPE_CHECKING:
    from xrg.tasks.report_generation import ReportGeneration


class RetrievedReports(Guide):
    default_name = "retrieved"

    def __init__(self, retriever: Retriever, query: str | None = None, field: str = "retrieved",
                 index_dir: str | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.retriever = retriever
        self.query = query
        self.field = field
        self.index_dir = index_dir

    def fields_written(self) -> list[str]:
        return [self.field]

    def query_embedding(self, encoded: Encoded) -> torch.Tensor:
        if self.query is None:
            return encoded.visual.pooled
        source = encoded.guidance.get(self.query)
        if source is None or source.embedding is None:
            raise ValueError(f"guide {self.name!r} queries with guide {self.query!r}'s embedding; list a guide named "
                             f"{self.query!r} that gives one (e.g. RecognisedConcepts) before it")
        return source.embedding

    def on_start(self, task: "ReportGeneration") -> None:
        def query_fn(batch: dict[str, Any]) -> torch.Tensor:
            return self.query_embedding(task.encode(batch, with_loss=False, until=self.name))

        ensure_index(self.retriever, task.trainer, task, query_fn, task.blocks_before(self.name), self.index_dir)

    def forward(self, encoded: Encoded) -> Guidance:
        found = self.retriever(self.query_embedding(encoded), exclude_ids=encoded.batch["ids"])
        rows = [{"retrieved_ids": ids, "retrieved_scores": scores} for ids, scores in zip(found.ids, found.scores.tolist())]
        return Guidance(fields={self.field: found.reports}, explanations=rows)

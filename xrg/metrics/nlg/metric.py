"""torchmetrics wrappers: collect report pairs on every rank, score once on the whole set.

BLEU and METEOR are corpus statistics and CIDEr-D's document frequencies come from the whole
evaluated set, so averaging per-rank (or per-batch) scores would change the numbers with the GPU
count. Each metric therefore keeps the texts themselves, as UTF-8 bytes in tensors (so the module
moves between devices like any other), gathers them across ranks as Python objects, and scores
the full set in ``compute``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from xrg.metrics.nlg.scores import METRICS, Tokenization, score_pairs


class PairedTextMetric(Metric):
    """Base of the text metrics: ``update(generated, references, ids=None)``, ``compute() -> {name: float}``.

    With study ids, a study gathered twice under DDP (Lightning's `DistributedSampler` pads an
    uneven split with repeats of its first studies) is scored once, so a multi-GPU score equals
    the one-process score.
    """

    metrics: tuple[str, ...] = METRICS
    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, tokenize: Tokenization = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenize = tokenize
        # Three texts per study: its id ("" when none was given), generated, reference; lengths are byte counts.
        self.add_state("text_bytes", default=[], dist_reduce_fx="cat")
        self.add_state("text_lengths", default=[], dist_reduce_fx="cat")

    def update(self, generated: list[str] | str, references: list[str] | str, ids: list[str] | None = None) -> None:
        generated = [generated] if isinstance(generated, str) else list(generated)
        references = [references] if isinstance(references, str) else list(references)
        if len(generated) != len(references):
            raise ValueError(f"update got {len(generated)} generated reports but {len(references)} references")
        ids = [""] * len(generated) if ids is None else [str(study_id) for study_id in ids]
        if len(ids) != len(generated):
            raise ValueError(f"update got {len(generated)} generated reports but {len(ids)} study ids")
        self._append([text for row in zip(ids, generated, references) for text in row])

    def _append(self, texts: list[str]) -> None:
        encoded = [text.encode("utf-8") for text in texts]
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        self.text_bytes.append(torch.from_numpy(data).to(self.device))
        self.text_lengths.append(torch.tensor([len(chunk) for chunk in encoded], dtype=torch.long, device=self.device))

    def rows(self) -> list[tuple[str, str, str]]:
        """(id, generated, reference) per study collected so far on this rank (or the whole set once synced)."""
        data = bytes(_concatenate(self.text_bytes, torch.uint8).cpu().numpy())
        lengths = _concatenate(self.text_lengths, torch.long).cpu().numpy()
        ends = np.cumsum(lengths)
        texts = [data[end - length : end].decode("utf-8") for end, length in zip(ends, lengths)]
        return list(zip(texts[0::3], texts[1::3], texts[2::3]))

    def texts(self) -> tuple[list[str], list[str]]:
        """(generated, references) collected so far on this rank (or the whole set once synced)."""
        rows = self.rows()
        return [row[1] for row in rows], [row[2] for row in rows]

    def _local_rows(self) -> list[tuple]:
        """What one rank sends when gathering: one tuple per study, its id first."""
        return self.rows()

    def _keep_rows(self, rows: list[tuple]) -> None:
        """Replace the state by these (gathered) rows."""
        self.text_bytes, self.text_lengths = [], []
        self._append([text for row in rows for text in row[:3]])

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        # torchmetrics gathers tensors with padding and casts an empty rank's state to float;
        # gathering the decoded strings as objects is simpler and exact.
        group = process_group or self.process_group
        gathered: list[Any] = [None] * torch.distributed.get_world_size(group)
        torch.distributed.all_gather_object(gathered, self._local_rows(), group=group)
        self._keep_rows(first_of_each_study([row for rank_rows in gathered for row in rank_rows]))

    def compute(self) -> dict[str, float]:
        distributed = self._is_synced and torch.distributed.is_available() and torch.distributed.is_initialized()
        if not distributed:
            return self._score()
        # Every rank holds the whole set now; rank 0 scores it once (one METEOR JVM, not one per
        # rank) and shares the result, or its error, so no rank waits forever.
        group = self.process_group
        result: list[Any] = [None]
        if torch.distributed.get_rank(group) == 0:
            try:
                result[0] = self._score()
            except Exception as error:  # noqa: BLE001 - re-raised on every rank below
                result[0] = error
        source = 0 if group is None else torch.distributed.get_global_rank(group, 0)
        torch.distributed.broadcast_object_list(result, src=source, group=group)
        if isinstance(result[0], Exception):
            raise result[0]
        return result[0]

    def _score(self) -> dict[str, float]:
        generated, references = self.texts()
        return score_pairs(generated, references, self.metrics, self.tokenize).corpus


def first_of_each_study(rows: list[tuple]) -> list[tuple]:
    """Rows in order without repeats of a study id (rows without an id are all kept)."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        if row[0] and row[0] in seen:
            continue
        seen.add(row[0])
        kept.append(row)
    return kept


def _concatenate(chunks: list[torch.Tensor] | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(chunks, torch.Tensor):
        return chunks
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=dtype)


class NLGMetrics(PairedTextMetric):
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D in one pass (``meteor=False`` skips the JVM)."""

    def __init__(self, meteor: bool = True, tokenize: Tokenization = "none", **kwargs: Any) -> None:
        super().__init__(tokenize=tokenize, **kwargs)
        self.metrics = METRICS if meteor else tuple(name for name in METRICS if name != "meteor")


class Bleu(PairedTextMetric):
    """Corpus BLEU-1..4 (pycocoevalcap's)."""

    metrics = ("bleu",)


class Meteor(PairedTextMetric):
    """Corpus METEOR 1.5 (the jar's aggregated score, not a mean of per-pair scores)."""

    metrics = ("meteor",)


class RougeL(PairedTextMetric):
    """Mean per-pair ROUGE-L (beta 1.2)."""

    metrics = ("rouge_l",)


class CiderD(PairedTextMetric):
    """CIDEr-D with document frequencies from the evaluated references."""

    metrics = ("cider",)

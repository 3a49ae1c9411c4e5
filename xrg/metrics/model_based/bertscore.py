"""BERTScore (Zhang et al., 2020): greedy cosine matching of contextual token embeddings.

P = mean over candidate tokens of their best cosine with a reference token, R the other way,
F = 2PR / (P + R); with `idf`, token weights are idf over the reference corpus,
idf(w) = log((M + 1) / (df(w) + 1)), and [CLS]/[SEP] weigh 0. `baseline` (P, R, F of random
pairs for this model/layer) rescales s -> (s - b) / (1 - b), as bert-score's rescale_with_baseline.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import torch

from xrg.metrics.model_based._weights import resolve_weights

HINT = "Save a transformers encoder (config, weights, tokenizer) to a folder and pass its path as `model`."


class BertScore:
    def __init__(
        self, model: str, layer: int | None = None, idf: bool = False,
        baseline: tuple[float, float, float] | None = None, batch_size: int = 32, device: str = "cpu",
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_weights(model, "BERTScore", HINT)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(device)
        self.layer = layer if layer is not None else self.model.config.num_hidden_layers
        self.idf, self.baseline, self.batch_size, self.device = idf, baseline, batch_size, device

    @torch.no_grad()
    def _embed(self, texts: Sequence[str]) -> list[tuple[torch.Tensor, list[int]]]:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True, return_tensors="pt").to(self.device)
            hidden = self.model(**batch, output_hidden_states=True).hidden_states[self.layer]
            hidden = torch.nn.functional.normalize(hidden, dim=-1)
            for row, mask, ids in zip(hidden, batch["attention_mask"], batch["input_ids"]):
                keep = mask.bool()
                out.append((row[keep].cpu(), ids[keep].tolist()))
        return out

    def _weights(self, ids: list[int], idf: dict[int, float], unseen: float) -> torch.Tensor:
        special = set(self.tokenizer.all_special_ids)
        return torch.tensor([0.0 if i in special else idf.get(i, unseen) for i in ids])

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        if len(candidates) != len(references):
            raise ValueError(f"got {len(candidates)} candidates but {len(references)} references")
        # Without idf every token weighs 1 (and [CLS]/[SEP] still 0); with it, tokens unseen in
        # the references get the largest idf, log(M + 1), as bert-score does.
        idf: dict[int, float] = {}
        unseen = 1.0
        if self.idf:
            docs = [set(self.tokenizer(r)["input_ids"]) for r in references]
            df = Counter(i for doc in docs for i in doc)
            idf = {i: math.log((len(docs) + 1) / (count + 1)) for i, count in df.items()}
            unseen = math.log(len(docs) + 1)
        totals = torch.zeros(3)
        for (cand, cand_ids), (ref, ref_ids) in zip(self._embed(candidates), self._embed(references)):
            similarity = cand @ ref.T
            wc, wr = self._weights(cand_ids, idf, unseen), self._weights(ref_ids, idf, unseen)
            precision = (similarity.max(1).values * wc).sum() / wc.sum()
            recall = (similarity.max(0).values * wr).sum() / wr.sum()
            f1 = 2 * precision * recall / (precision + recall)
            totals += torch.stack([precision, recall, f1])
        scores = totals / max(len(candidates), 1)
        if self.baseline is not None:
            base = torch.tensor(self.baseline)
            scores = (scores - base) / (1 - base)
        return dict(zip(("bertscore/p", "bertscore/r", "bertscore/f1"), scores.tolist()))


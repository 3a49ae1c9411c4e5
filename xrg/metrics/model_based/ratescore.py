"""RaTEScore (Zhao et al., 2024) through its authors' package (`pip install "xrg[ratescore]"`):
medical entities (RaTE-NER) of both reports matched by synonym-aware embeddings (BioLORD),
weighted by entity type, negation-aware. Key `ratescore/score`, the mean over pairs. Both models
download from the hub (Angelakeke/RaTE-NER-Deberta, FremyCompany/BioLORD-2023-C). The package
splits sentences with medspaCy, whose own pins force numpy < 2 on Python < 3.12: the extra brings
spaCy >= 3.8 and medspaCy's parts, then `pip install --no-deps medspacy`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from xrg.metrics.model_based._loading import loading, require

KEYS = ("ratescore/score",)
INSTALL = 'pip install "xrg[ratescore]" && pip install --no-deps medspacy==1.3.1'


class RaTEScore:
    name = "ratescore"

    def __init__(
        self, ner_model: str = "Angelakeke/RaTE-NER-Deberta", eval_model: str = "FremyCompany/BioLORD-2023-C",
        batch_size: int = 8, use_gpu: bool = False,
    ) -> None:
        package = require("RaTEScore", "RaTEScore", INSTALL)
        with loading("RaTEScore", f"{ner_model!r} and {eval_model!r}"):
            self.scorer = package.RaTEScore(bert_model=ner_model, eval_model=eval_model, batch_size=batch_size, use_gpu=use_gpu)

    def per_sample(self, generated: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
        scores = self.scorer.compute_score(list(generated), list(references))
        return {"ratescore/score": np.asarray(scores, dtype=np.float64)}

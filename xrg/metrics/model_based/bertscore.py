"""BERTScore (Zhang et al., 2020) through `bert-score` (`pip install "xrg[bertscore]"`).

Defaults are the package's for English (`lang="en"`: roberta-large, layer 17, rescaled with the
package's baseline), so numbers compare with papers that ran `bert_score.score(..., lang="en",
rescale_with_baseline=True)`. `model_type` / `num_layers` pick another encoder (a hub name or a
local folder; a local folder needs `num_layers` and `rescale_with_baseline=False` unless a
`baseline_path` is given). Keys `bertscore/{p,r,f1}`, each the mean over pairs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from xrg.metrics.model_based._loading import loading, require

KEYS = ("bertscore/p", "bertscore/r", "bertscore/f1")


class BertScore:
    name = "bertscore"

    def __init__(
        self, model_type: str | None = None, num_layers: int | None = None, rescale_with_baseline: bool = True,
        idf: bool = False, baseline_path: str | None = None, batch_size: int = 64, device: str | None = None,
    ) -> None:
        bert_score = require("bert_score", "BERTScore", 'pip install "xrg[bertscore]"')
        with loading("BERTScore", repr(model_type or "roberta-large (lang='en')")):
            self.scorer = bert_score.BERTScorer(
                model_type=model_type, num_layers=num_layers, lang="en", rescale_with_baseline=rescale_with_baseline,
                idf=idf, baseline_path=baseline_path, batch_size=batch_size, device=device,
            )

    def per_sample(self, generated: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
        if self.scorer.idf:  # idf weights come from the evaluated references, as bert_score.score does
            self.scorer.compute_idf(list(references))
        precision, recall, f1 = self.scorer.score(list(generated), list(references))
        return {key: values.double().numpy() for key, values in zip(KEYS, (precision, recall, f1))}

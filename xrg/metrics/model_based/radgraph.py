"""RadGraph F1 (Delbrouck et al., 2022) with the RadGraph model and reward code as RadEval ships
them (`pip install "xrg[radgraph]"`, then RadEval without its dependencies; see `_loading`).

Per report, the F1 of the entity / relation sets of the two RadGraph annotations at three levels,
`simple` (entities), `partial` (entities and whether they have a relation) and `complete`
(entities with their relations); a pair with an empty side scores 0. Keys
`radgraph/{simple,partial,complete}/f1`, each the mean over reports. The model (`radgraph-xl`,
the packages' default, or `radgraph`) downloads from StanfordAIMI/RRG_scorers on the hub.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from xrg.metrics.model_based._loading import loading, require_radeval

KEYS = ("radgraph/simple/f1", "radgraph/partial/f1", "radgraph/complete/f1")


class RadGraphF1:
    name = "radgraph"

    def __init__(self, model_type: str = "radgraph-xl", cuda: int | None = None) -> None:
        radgraph = require_radeval("radeval.metrics.radgraph", "RadGraph F1", "radgraph")
        with loading("RadGraph F1", f"the {model_type} model (StanfordAIMI/RRG_scorers, {model_type}.tar.gz)"):
            self.scorer = radgraph.F1RadGraph(reward_level="all", model_type=model_type, cuda=cuda)

    def per_sample(self, generated: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
        _, per_level, _, _ = self.scorer(refs=list(references), hyps=list(generated))
        return {key: np.asarray(values, dtype=np.float64) for key, values in zip(KEYS, per_level)}

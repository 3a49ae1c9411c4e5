"""GREEN (Ostmeier et al., 2024): an LLM judge counts clinically significant errors and matched
findings; a pair scores matched / (matched + significant errors). The prompt, the judge's chat
layout, generation and parsing are RadEval's GREEN (`pip install "xrg[green]"`, then RadEval
without its dependencies; see `_loading`). Key `green/score`, the mean over pairs.

The judge is StanfordAIMI/GREEN-radllama2-7b from the hub by default (a 7B LLM: use a GPU).
RadEval loads it with `trust_remote_code` unless the name contains "Phi"; the released judges
are plain Llama / Phi checkpoints with no code of their own.
"""

from __future__ import annotations

import tempfile
from typing import Sequence

import numpy as np

from xrg.metrics.model_based._loading import loading, require_radeval

KEYS = ("green/score",)


class Green:
    name = "green"

    def __init__(self, model: str = "StanfordAIMI/GREEN-radllama2-7b", cpu: bool = False) -> None:
        green = require_radeval("radeval.metrics.green_score.green", "GREEN", "green")
        # RadEval writes nothing there in this path; a temp folder keeps the user's folder clean.
        self._output_dir = tempfile.mkdtemp(prefix="xrg-green-")
        with loading("GREEN", f"the judge {model!r}"):
            self.scorer = green.GREEN(model, output_dir=self._output_dir, cpu=cpu)

    def per_sample(self, generated: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
        _, _, scores, _ = self.scorer(list(references), list(generated))
        return {"green/score": np.asarray(scores, dtype=np.float64)}

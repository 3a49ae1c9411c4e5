"""`PriorStudy`: what the referring clinician asked and what the last study showed.

Recent systems (LLaVA-Rad, Libra, MLRG, PriorRG) condition the report on the study's indication
and on the patient's prior study; comparison wording ("new", "unchanged", "resolved") cannot be
right without the prior. This guide gives both to any decoder:

- `text`: prompt fields `indication` and `prior_report` (the prior study's report) for LLM decoders.
- `images`: the prior study's views (the data module's `prior_views` > 0), encoded by the task's
  own image encoder and aligner, tagged with a learned "prior" vector so the decoder can tell them
  from the current views, and appended to the memory. A study without a prior adds masked tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from xrg.blocks.base import Features
from xrg.blocks.guides.base import Encoded, Guidance, Guide


class PriorStudy(Guide):
    default_name = "prior"

    def __init__(self, text: bool = True, images: bool = False, name: str | None = None) -> None:
        super().__init__(name)
        if not (text or images):
            raise ValueError("PriorStudy with text: false and images: false adds nothing; enable one")
        self.text = text
        self.images = images
        self.tag: nn.Parameter | None = None

    def bind(self, visual_dim: int, memory_dim: int | None) -> int | None:
        if self.images:
            if memory_dim is None:
                raise ValueError("PriorStudy(images: true) appends visual memory tokens; the task has "
                                 "visual_tokens: false (use text: true only)")
            if self.tag is None or self.tag.shape[0] != memory_dim:  # bound again at the same width: kept
                self.tag = nn.Parameter(torch.randn(memory_dim) * 0.02)
        return memory_dim

    def fields_written(self) -> list[str]:
        return ["indication", "prior_report"] if self.text else []

    def forward(self, encoded: Encoded) -> Guidance:
        batch, size = encoded.batch, encoded.size
        fields = {}
        if self.text:
            fields = {"indication": batch.get("indications") or [""] * size,
                      "prior_report": batch.get("prior_reports") or [""] * size}
        if not self.images:
            return Guidance(fields=fields)
        if "prior_images" not in batch:
            raise ValueError("PriorStudy(images: true) needs the prior studies' images: set the data module's "
                             "prior_views (e.g. 2)")
        return Guidance(memory=self._with_prior(encoded, batch["prior_images"], batch["prior_view_mask"]), fields=fields)

    def _with_prior(self, encoded: Encoded, images: torch.Tensor, view_mask: torch.Tensor) -> Features:
        prior = encoded.encode_views(images, view_mask)
        has_prior = view_mask.any(1, keepdim=True)  # [B, 1]: studies without a prior attend to none of these
        prior_mask = has_prior if prior.mask is None else prior.mask & has_prior
        prior_mask = prior_mask.expand(-1, prior.tokens.shape[1])
        memory = encoded.memory
        mask = memory.mask if memory.mask is not None else torch.ones(memory.tokens.shape[:2], dtype=torch.bool,
                                                                      device=memory.tokens.device)
        tokens = prior.tokens.to(memory.tokens.dtype) + self.tag.to(memory.tokens.dtype)
        joined = memory._replace(tokens=torch.cat([memory.tokens, tokens], 1), mask=torch.cat([mask, prior_mask], 1))
        if memory.appended:  # a guide's tokens already follow the current views: the prior's go after them
            return joined._replace(appended=memory.appended + tokens.shape[1])
        return joined._replace(views=memory.views + prior.views)  # more views (on a decoder's memory grid too)

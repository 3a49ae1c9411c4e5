"""`ReportGeneration`: the one report task. Every paper is a recipe of it:

    images ─ image_encoder ─┬─ (aligner) ─ memory ─┬───────────────────────── decoder ─ report
                            │                      │            ▲      ▲
                            └── visual ── guides ──┴─ tokens ───┘      │ (prompt fields, for an LLM)
                                           (findings, clues, concepts, retrieved reports)

R2Gen and UniCrossAdapter: an encoder and a transformer decoder, no guides. RaDialog: a Q-Former
aligner, `PredictedFindings` and an LLM decoder. TRRG: `DiseaseClues`. RadAlign:
`RecognisedConcepts` and `RetrievedReports` with `visual_tokens: false` (the LLM reads text only).
Any mix is a list of guides. `encode` returns one `Encoded` that every hook receives; nothing is
stashed in the batch. The objective is the decoder's token NLL plus the guides' auxiliary losses.

`visual_token_dropout` (training only, off by default) hides each study's visual tokens from the
decoder with that probability, the guides' tokens staying: the decoder cannot write the common
report from the image alone, so it learns to read what the guides' tokens say (a findings guide's
present / absent tokens). The guides themselves always read the image.

`cache_frozen_features` (off by default) encodes the training and validation studies once when a
fit starts, if the image encoder is frozen and the training images do not vary between epochs, and
keeps their features in memory: the loaders stop reading those images (`xrg.tasks.feature_cache`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.decoders.base import Decoder
from xrg.blocks.decoders.prompt import PromptBuilder, default_template
from xrg.blocks.encoders.base import Features, ImageEncoder
from xrg.blocks.guides.base import Encoded, Guide
from xrg.tasks.base import XrgTask
from xrg.tasks.feature_cache import FeatureCache, keep_frozen_features, release_frozen_features


def append_tokens(memory: Features, tokens: torch.Tensor) -> Features:
    mask = None
    if memory.mask is not None:
        mask = torch.cat([memory.mask, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)], 1)
    existing = memory.tokens
    if existing.shape[1] == 0:  # no visual tokens (`visual_tokens: false`): the guide's width is the memory's
        existing = existing.new_zeros(tokens.shape[0], 0, tokens.shape[2])
    return memory._replace(tokens=torch.cat([existing, tokens.to(existing.dtype)], 1), mask=mask,
                           appended=memory.appended + tokens.shape[1])


class ReportGeneration(XrgTask):
    def __init__(
        self,
        image_encoder: ImageEncoder,
        decoder: Decoder,
        aligner: Aligner | None = None,
        guides: list[Guide] | None = None,
        prompt: PromptBuilder | None = None,
        visual_tokens: bool = True,
        generate_in_validation: bool = True,
        nlg_metrics: bool = True,
        meteor: bool = True,
        clinical_efficacy: bool = True,
        model_metrics: list[str] | None = None,
        visual_token_dropout: float = 0.0,
        cache_frozen_features: bool = False,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(**task_kwargs)
        self.image_encoder = image_encoder
        self.aligner = aligner
        self.guides = nn.ModuleDict()
        written: dict[str, str] = {}
        for guide in guides or []:
            if guide.name in self.guides:
                raise ValueError(f"two guides are named {guide.name!r}; give one a different `name`")
            for field in guide.fields_written():
                if field in written:
                    raise ValueError(f"guides {written[field]!r} and {guide.name!r} both write the prompt field "
                                     f"{field!r}; give one a different `field`")
                written[field] = guide.name
            self.guides[guide.name] = guide
        self.decoder = decoder
        if prompt is not None and not decoder.takes_prompts:
            raise ValueError(f"{type(decoder).__name__} reads no text prompt; drop `prompt` or use an LLM decoder")
        if prompt is None and written and decoder.takes_prompts:
            prompt = PromptBuilder(template=default_template(list(written)), chat="plain")
        self.prompt = prompt
        self.visual_tokens = visual_tokens
        if not 0.0 <= visual_token_dropout < 1.0:
            raise ValueError(f"visual_token_dropout is a probability below 1, got {visual_token_dropout}")
        self.visual_token_dropout = visual_token_dropout
        self.cache_frozen_features = cache_frozen_features
        self._feature_cache: FeatureCache | None = None
        self.bind_widths()
        self.generate_in_validation = generate_in_validation
        self._metric_flags = {"nlg": nlg_metrics, "meteor": meteor, "clinical_efficacy": clinical_efficacy}
        self.val_metrics = self._build_metrics()
        # Model-based metrics (radgraph, chexbert, green, ratescore, bertscore) score the test set only.
        self.test_metrics = self._build_metrics(model_metrics or [])
        self.apply_frozen()

    def apply_frozen(self) -> None:
        super().apply_frozen()
        if self.aligner is not None:  # its pretraining heads get no gradient from a report loss
            for parameter in self.aligner.objective_only_parameters():
                parameter.requires_grad_(False)

    def bind_widths(self) -> None:
        """Each block's input width from the block upstream: aligner <- image encoder, each guide
        <- image encoder and the memory before it, decoder <- the memory after the last guide."""
        visual_dim = self.image_encoder.dim
        memory_dim = visual_dim
        if self.aligner is not None:
            self.aligner.bind_input(visual_dim)
            memory_dim = self.aligner.out_dim
        if not self.visual_tokens:
            memory_dim = None
        for guide in self.guides.values():
            memory_dim = guide.bind(visual_dim, memory_dim)
        self.decoder.bind_memory(memory_dim if memory_dim is not None else visual_dim)

    def _build_metrics(self, model_metrics: list[str] = ()):
        if not (self._metric_flags["nlg"] or self._metric_flags["clinical_efficacy"] or model_metrics):
            return None
        from xrg.metrics.report import ReportMetrics

        return ReportMetrics(**self._metric_flags, model_based=list(model_metrics))

    def blocks_before(self, guide_name: str) -> list[nn.Module]:
        """The blocks that compute what guide `guide_name` reads (whose weights its index keys depend on)."""
        blocks = [b for b in (self.image_encoder, self.aligner) if b is not None]
        for name, guide in self.guides.items():
            if name == guide_name:
                break
            blocks.append(guide)
        return blocks

    # --- the forward pass -----------------------------------------------------------------
    def see(self, images: torch.Tensor, view_mask: torch.Tensor | None) -> tuple[Features, Features]:
        """(image encoder features, aligned memory) of views; also serves a prior study's views."""
        return self.align(self.image_encoder(images, view_mask))

    def see_batch(self, batch: dict[str, Any]) -> tuple[Features, Features]:
        """`see` a batch's views, or read the features `cache_frozen_features` keeps when its loader
        read no images."""
        if "images" in batch or self._feature_cache is None:
            return self.see(batch["images"], batch.get("view_mask"))
        return self.align(self._feature_cache.features(batch["ids"], self.device))

    def align(self, visual: Features) -> tuple[Features, Features]:
        return visual, self.aligner(visual) if self.aligner is not None else visual

    def encode(self, batch: dict[str, Any], with_loss: bool = True, until: str | None = None) -> Encoded:
        """Image encoder, aligner, then each guide in order (stopping before guide `until`)."""
        visual, memory = self.see_batch(batch)
        if not self.visual_tokens:
            memory = memory._replace(tokens=memory.tokens[:, :0], mask=None if memory.mask is None else memory.mask[:, :0])
        encoded = Encoded(batch, visual, memory, with_loss=with_loss, training=self.training,
                          encode_views=lambda images, view_mask: self.see(images, view_mask)[1])
        replaced = False  # a guide gave the decoder a memory of its own (TRRG's clue interaction)
        for name, guide in self.guides.items():
            if name == until:
                break
            guidance = guide(encoded)
            encoded.guidance[name] = guidance
            if guidance.memory is not None:
                encoded.memory, replaced = guidance.memory, True
            if guidance.tokens is not None:
                encoded.memory = append_tokens(encoded.memory, guidance.tokens)
        if self.training and self.visual_token_dropout > 0 and not replaced:
            encoded.memory = self.hide_visual_tokens(encoded.memory, memory.tokens.shape[1])
        return encoded

    def hide_visual_tokens(self, memory: Features, count: int) -> Features:
        """`memory` with its first `count` (visual) tokens masked for a random share of studies;
        unchanged when no guide added tokens after them (the decoder would read nothing)."""
        if memory.tokens.shape[1] <= count:
            return memory
        mask = memory.mask.clone() if memory.mask is not None else torch.ones(
            memory.tokens.shape[:2], dtype=torch.bool, device=memory.tokens.device)
        hidden = torch.rand(mask.shape[0], device=mask.device) < self.visual_token_dropout
        mask[hidden, :count] = False
        return memory._replace(mask=mask)

    def prompts(self, encoded: Encoded) -> list[str] | None:
        """One prompt per study from the guides' fields (None: the decoder takes no prompt)."""
        if self.prompt is None:  # also for decoders that read memory only: guides speak to them in tokens
            return None
        return [self.prompt.build(**self.prompt_fields(encoded, i)) for i in range(encoded.size)]

    def prompt_fields(self, encoded: Encoded, i: int) -> dict[str, Any]:
        # Fields no guide writes read as empty ("None"), so a template runs with its guides removed.
        return {"findings": [], "concepts": [], "retrieved": [], "indication": "", "prior_report": "", **encoded.fields(i)}

    def step_loss(self, encoded: Encoded) -> torch.Tensor:
        """The decoder's token NLL plus every guide's auxiliary loss (each logged by name)."""
        loss = self.decoder.loss(encoded.memory, encoded.batch["reports"], self.prompts(encoded))
        return loss + self.guide_losses(encoded)

    def guide_losses(self, encoded: Encoded) -> torch.Tensor | float:
        """The sum of the guides' auxiliary losses, each logged by name (0 when there are none)."""
        split = "train" if self.training else "eval"
        total = 0.0
        for name, guidance in encoded.guidance.items():
            if guidance.loss is not None:
                # averaged over ranks outside training, as the evaluation loss is (one rank's half differs)
                self.log(f"{split}/{name}_loss", guidance.loss, batch_size=encoded.size, sync_dist=not self.training)
                total = total + guidance.loss
        return total

    def generate_reports(self, encoded: Encoded, **generate_kwargs) -> list[str]:
        return self.decoder.generate(encoded.memory, self.prompts(encoded), **generate_kwargs)

    def forward(self, images: torch.Tensor, view_mask: torch.Tensor | None = None, **generate_kwargs) -> list[str]:
        """Reports for a batch of studies `[B, V, C, H, W]` (notebook use)."""
        ids = [str(i) for i in range(images.shape[0])]
        encoded = self.encode({"images": images, "view_mask": view_mask, "ids": ids}, with_loss=False)
        return self.generate_reports(encoded, **generate_kwargs)

    def generate(self, images: torch.Tensor, view_mask: torch.Tensor | None = None, **generate_kwargs) -> list[str]:
        return self(images, view_mask, **generate_kwargs)

    # --- Lightning hooks ------------------------------------------------------------------
    def _start(self) -> None:
        for guide in self.guides.values():
            guide.on_start(self)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.cache_frozen_features:  # before the guides start: a retrieval index reads the kept features too
            self._feature_cache = keep_frozen_features(self)
        self._start()

    def teardown(self, stage: str) -> None:
        super().teardown(stage)
        if self._feature_cache is not None:
            release_frozen_features(self)
            self._feature_cache = None

    def on_validation_epoch_start(self) -> None:
        # Not `on_validation_start`: a weight-averaging callback swaps its averaged weights in at
        # its own epoch start, which runs before this one, so guides index and tune thresholds
        # with the weights that validate and that the checkpoint saves.
        self._start()
        if not self.trainer.sanity_checking:
            for guide in self.guides.values():
                guide.on_validation_start(self)

    def on_test_start(self) -> None:
        self._start()

    def on_predict_start(self) -> None:
        self._start()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.step_loss(self.encode(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        return loss

    def _evaluate(self, batch: dict[str, Any], prefix: str, metrics) -> None:
        encoded = self.encode(batch)
        loss = self.step_loss(encoded)
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=len(batch["ids"]), sync_dist=True)
        if metrics is not None and (prefix == "test" or self.generate_in_validation):
            metrics.update(self.generate_reports(encoded), batch["reports"], encoded.chexpert_probabilities(),
                           ids=batch["ids"])

    def _log_metrics(self, prefix: str, metrics) -> None:
        if metrics is None or (prefix == "val" and not self.generate_in_validation):
            return
        scores = metrics.compute()
        metrics.reset()
        # compute() already scored the gathered set once; every rank holds the same numbers.
        self.log_dict({f"{prefix}/{k}": v for k, v in scores.items()}, rank_zero_only=False)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_metrics("val", self.val_metrics)
        elif self.val_metrics is not None:
            self.val_metrics.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        encoded = self.encode(batch, with_loss=False)
        generated = self.generate_reports(encoded)
        extras = encoded.explanations()
        rows = []
        for i, study_id in enumerate(batch["ids"]):
            row = {"id": study_id, "generated": generated[i]}
            if batch.get("reports"):
                row["reference"] = batch["reports"][i]
            if extras is not None:
                row.update(extras[i])
            rows.append(row)
        return rows

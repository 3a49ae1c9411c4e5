"""RaDialog's predicted findings: a findings head's observations, as prompt text and optionally as tokens.

While training, the guide can state the ground-truth labels instead (`labels_in_training`, as
RaDialog trains its LLM; the batch's `stated_labels` where the data left findings out of the
training reports, `ReportDataModule(drop_finding_sentences)`), so the decoder learns to trust it;
at test time it is always the head's prediction. The head reads the image encoder's features
(before any aligner). With `tokens`, one memory token per observation, `p * present_k + (1 - p) *
absent_k` with learned embeddings, tells a decoder without a prompt (the transformer decoder) the
same thing. With `loss_weight` > 0 the head also trains here, on the batch's labels (its own BCE),
instead of only in its own stage.

Two options close the gap between what the decoder learns from and what it reads at test time
(docs/quality.md): `decision_tokens` makes the tokens state the head's decisions (0 or 1 at its
thresholds) outside training, as the labels do while training, instead of probabilities the decoder
has never seen; `tune_thresholds` sets one threshold per observation at the start of every validation, the
one with the best F1 on the validation split (a buffer, saved with the weights): the head reads the
validation studies once first, so the reports that validation scores, and the checkpoint it picks,
use the thresholds of the weights being validated (tuned after it, as before, they lagged one
validation behind, and a balanced head's rare-finding thresholds from four epochs earlier could put
a finding in most reports);
`max_call_ratio` r limits each tuned threshold to calling the observation in at most r validation
studies per study that has it (`best_f1_thresholds`), so a finding the head barely perceives is not
stated in every report (1.5 on the synthetic benchmark: test micro-14 +0.05, macro-14 level).
`fit_pos_weight` sets the head's BCE positive weights from the training labels at the start of a
fresh fit (`true` or `log`: RaDialog's log(N / positives), as `FindingsClassification` does;
`ratio`: negatives / positives), so rare findings still pull on the head when it trains here.

`no_finding_rule` makes the head's decisions outside training follow the labels' own rule: No Finding
is decided exactly when no pathology is (Support Devices aside). Thresholds decide each observation on
its own, so a study may get no decision at all (all tokens absent, an empty prompt list), a state no
training label shows the decoder; a writer then falls back on its language prior (docs/quality.md
section 25: a rib fracture written for such studies).

`token_scale` is the standard deviation the present / absent embeddings start from. The default
0.02 (a transformer's usual init) starts each pair as two nearly equal vectors beside visual tokens
of unit scale, and a decoder learns to write from the visual tokens long before it reads the pair;
1.0 starts them as far apart as the visual tokens are large, so the decoder reads them from the
first steps (docs/quality.md, section 3).

`uncertain_tokens` gives each observation a third learned state, for the training labels' uncertain
code (-1, a hedged "may represent atelectasis"). Without it an uncertain label is told as absent,
so the decoder learns that "absent" sometimes goes with an image that shows the finding and a
hedged sentence, and at test time it hedges or leaves out findings its head decided. With it,
"absent" means absent and "present" means stated plainly; the head's decisions at test time are
present or absent only (what is hedged is wording, not something the image shows), so a decoder
that reads its tokens states the finding plainly where its head decides it (docs/quality.md
section 15: Atelectasis at the head's F1; level on three-seed means, which the decoder's token
confusions set).

`shared_states` factors each token as an observation's own slot embedding plus one present / absent
(/ uncertain) embedding shared by all observations, instead of an independent pair per observation,
so a decoder can learn what "present" means once, from the common findings, and each slot only has
to say which observation it is. With full label balancing neither option moves the three-seed means
(section 15); with square-root balancing the two together make the findings-first recipe read every
token in every seed and combine the findings it is told (section 16), and that recipe sets both.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from xrg.blocks.findings.base import (NO_FINDING, FindingsHead, PosWeightRule, best_f1_thresholds, label_targets,
                                      names_from_row, no_finding_as_labelled, pos_weight_rule)
from xrg.blocks.guides.base import Encoded, Guidance, Guide
from xrg.data.labels import select_labels
from xrg.metrics.gather import gather_studies, study_keys


class PredictedFindings(Guide):
    default_name = "findings"

    def __init__(self, head: FindingsHead, labels_in_training: bool = True, field: str = "findings",
                 tokens: bool = False, token_dim: int | None = None, loss_weight: float = 0.0,
                 decision_tokens: bool = False, tune_thresholds: bool = False, fit_pos_weight: bool | PosWeightRule = False,
                 token_scale: float = 0.02, max_call_ratio: float | None = None, uncertain_tokens: bool = False,
                 shared_states: bool = False, no_finding_rule: bool = False, name: str | None = None) -> None:
        super().__init__(name)
        if no_finding_rule and NO_FINDING not in head.label_names:
            raise ValueError(f"no_finding_rule decides {NO_FINDING!r}, which the head does not predict "
                             f"(its labels: {head.label_names})")
        self.no_finding_rule = no_finding_rule
        self.head = head
        self.labels_in_training = labels_in_training
        self.field = field
        self.tokens = tokens
        self.token_dim = token_dim  # None: the memory's width
        self.loss_weight = loss_weight
        self.states: nn.Parameter | None = None  # [K or 1, 2 or 3, D]: present / absent (/ uncertain)
        self.slots: nn.Parameter | None = None  # [K, D] with shared_states: which observation a token is
        self.decision_tokens = decision_tokens
        self.tune_thresholds = tune_thresholds
        self.pos_weight_rule = pos_weight_rule(fit_pos_weight)
        self.token_scale = token_scale
        if max_call_ratio is not None and not (tune_thresholds and max_call_ratio >= 1):
            raise ValueError(f"max_call_ratio limits tuned thresholds: set tune_thresholds: true and a ratio of at "
                             f"least 1, got tune_thresholds={tune_thresholds}, max_call_ratio={max_call_ratio}")
        self.max_call_ratio = max_call_ratio
        if uncertain_tokens and not (tokens and labels_in_training):
            raise ValueError("uncertain_tokens is a third token state for the training labels: set tokens: true and "
                             f"labels_in_training: true, got tokens={tokens}, labels_in_training={labels_in_training}")
        self.uncertain_tokens = uncertain_tokens
        if shared_states and not tokens:
            raise ValueError("shared_states factors the findings tokens: set tokens: true")
        self.shared_states = shared_states
        if tune_thresholds:
            self.register_buffer("thresholds", torch.full((head.num_labels,), float(head.threshold)))

    def bind(self, visual_dim: int, memory_dim: int | None) -> int | None:
        self.head.bind_input(visual_dim)
        if not self.tokens:
            return memory_dim
        width = memory_dim or self.token_dim or visual_dim
        shape = (1 if self.shared_states else self.head.num_labels, 3 if self.uncertain_tokens else 2, width)
        if self.states is None or self.states.shape != shape:
            self.states = nn.Parameter(torch.randn(shape) * self.token_scale)
            if self.shared_states:
                self.slots = nn.Parameter(torch.randn(self.head.num_labels, width) * self.token_scale)
        return width

    def fields_written(self) -> list[str]:
        return [self.field]

    def threshold(self) -> float | torch.Tensor:
        return self.thresholds if self.tune_thresholds else self.head.threshold

    def on_start(self, task) -> None:
        if not self.pos_weight_rule:
            return
        trainer = task.trainer
        if trainer.state.fn == "fit" and task.global_step == 0 and not trainer.ckpt_path:  # a fresh fit
            self.head.fit_pos_weight_from(trainer.datamodule, self.pos_weight_rule)

    def on_validation_start(self, task) -> None:
        if self.tune_thresholds:
            probs, labels = self.validation_probabilities(task)
            if len(probs):
                self.thresholds.copy_(best_f1_thresholds(probs, labels, self.head.threshold, self.max_call_ratio))

    def validation_probabilities(self, task) -> tuple[torch.Tensor, torch.Tensor]:
        """`probabilities` of the validation batches this validation will run (all ranks' together)."""
        trainer = task.trainer
        loaders = trainer.val_dataloaders
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        batches = itertools.chain.from_iterable(
            itertools.islice(loader, None if math.isinf(count) else int(count))
            for loader, count in zip(loaders, trainer.num_val_batches))
        keys, probs, labels = self.labeled_rows(task, batches)
        if trainer.world_size > 1 and len(probs):  # every rank tunes on the whole split, so all hold the same thresholds
            probs, labels = (t.cpu() for t in gather_studies(task, *(t.to(task.device) for t in (keys, probs, labels))))
        return probs, labels

    @torch.no_grad()
    def probabilities(self, task, batches) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's probabilities `[N, K]` on the labeled studies of `batches` (read through
        `task`'s image encoder) and their labels, on the CPU; empty when none has labels."""
        return self.labeled_rows(task, batches)[1:]

    @torch.no_grad()
    def labeled_rows(self, task, batches) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`probabilities` with each row's study key first (`xrg.metrics.gather.study_keys`)."""
        keys, probs, labels = [], [], []
        for batch in batches:
            if batch.get("labels") is None:
                continue
            keys.append(study_keys(batch["ids"]))
            batch = task.transfer_batch_to_device(batch, task.device, 0)
            visual, _ = task.see_batch(batch)
            probs.append(self.head(visual).sigmoid().float().cpu())
            labels.append(select_labels(batch["labels"], self.head.label_names).float().cpu())
        if not probs:
            return torch.empty(0, dtype=torch.long), torch.empty(0), torch.empty(0)
        return torch.cat(keys), torch.cat(probs), torch.cat(labels)

    def forward(self, encoded: Encoded) -> Guidance:
        logits = self.head(encoded.visual)
        probs = logits.sigmoid()
        decided = (probs >= torch.as_tensor(self.threshold(), dtype=probs.dtype, device=probs.device)).to(probs.dtype)
        if self.no_finding_rule and not encoded.training:
            decided = no_finding_as_labelled(decided, self.head.label_names)
        predicted = [names_from_row(row, self.head.label_names) for row in decided]
        labels = encoded.batch.get("labels")
        if labels is not None:
            labels = select_labels(labels, self.head.label_names)
        stated, uncertain = probs, None
        if encoded.training and self.labels_in_training and labels is not None:
            # What the training report states: its labels, or with drop_finding_sentences the data's
            # `stated_labels` (some findings' sentences left out); the head still learns `labels`.
            told = encoded.batch.get("stated_labels")
            told = labels if told is None else select_labels(told, self.head.label_names)
            stated = label_targets(told)[0].to(probs.dtype)
            if self.uncertain_tokens:
                uncertain = (told == -1).unsqueeze(-1)  # [B, K, 1]
        elif not encoded.training and self.decision_tokens:
            stated = decided
        names = predicted if stated is probs or stated is decided else [names_from_row(row, self.head.label_names)
                                                                         for row in stated]
        tokens = None
        if self.tokens:
            weight = stated.unsqueeze(-1)  # [B, K, 1]
            tokens = weight * self.states[:, 0] + (1 - weight) * self.states[:, 1]
            if uncertain is not None:
                tokens = torch.where(uncertain, self.states[:, 2], tokens)
            if self.slots is not None:
                tokens = tokens + self.slots
        loss = None
        if encoded.with_loss and self.loss_weight > 0 and labels is not None:
            loss = self.loss_weight * self.head.loss(logits, labels)
        scores = [dict(zip(self.head.label_names, (round(p, 4) for p in row))) for row in probs.tolist()]
        return Guidance(
            tokens=tokens,
            loss=loss,
            fields={self.field: [[n.lower() for n in found] for found in names]},
            explanations=[{"findings": found, "findings_probs": row} for found, row in zip(predicted, scores)],
            probabilities=dict(zip(self.head.label_names, probs.detach().unbind(1))),
        )

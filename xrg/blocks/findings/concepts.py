"""`ConceptAligner`: RadAlign's concept-aligned findings classifier.

    image tokens ──► concept tokens (one learned query per criterion) ──cross-attention──►
    concept embeddings ──projection──► text-encoder space ──cosine──► [present, absent] anchors
    ──► per-criterion evidence ──► disease logits (each disease from its own criteria only)

Criteria are text (`criteria/chexpert.yaml`: per disease, attributes such as heart size or
costophrenic angles, each worded as present and as absent). A text encoder embeds the statements
once into anchors. Each concept token is trained contrastively to sit on the anchor that states
its disease's label (InfoNCE over that criterion's anchors), and the disease logit is a learned
positive-initialised weighting of its criteria's evidence, so every prediction is explained by
named, scored criteria. Choices RadAlign's text leaves open are documented in docs/recipes/radalign.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from xrg.blocks.encoders.base import Features, TextEncoder
from xrg.blocks.findings.base import FindingsHead, names_from_row
from xrg.data.errors import DataError

CRITERIA_DIR = Path(__file__).resolve().parent / "criteria"


@dataclass(frozen=True)
class Criterion:
    disease: str
    name: str
    present: str
    absent: str


def load_criteria(criteria: str | Path) -> list[Criterion]:
    """Criteria from a YAML/JSON file: {disease: [{name, present, absent}, ...]}.

    `criteria` is a path, or the stem of a file shipped in `xrg/blocks/findings/criteria/`.
    """
    path = Path(criteria)
    if not path.suffix:
        path = CRITERIA_DIR / f"{criteria}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except OSError as error:
        shipped = sorted(p.stem for p in CRITERIA_DIR.glob("*.yaml"))
        raise DataError(f"{path}: cannot read criteria ({error.strerror}); shipped criteria: {shipped}") from error
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not valid YAML/JSON ({error})") from error
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a mapping of disease name to a list of criteria")
    result = []
    for disease, items in data.items():
        if not isinstance(items, list) or not items:
            raise DataError(f"{path}: {disease!r} must list at least one criterion")
        for i, item in enumerate(items):
            fields = {key: item.get(key) if isinstance(item, dict) else None for key in ("name", "present", "absent")}
            missing = [key for key, value in fields.items() if not isinstance(value, str) or not value.strip()]
            if missing:
                raise DataError(f"{path}: {disease!r} criterion {i} needs non-empty text for {missing}")
            result.append(Criterion(str(disease), **fields))
    return result


class ConceptOutput(NamedTuple):
    logits: torch.Tensor  # [B, K] disease logits
    anchor_logits: torch.Tensor  # [B, C, 2] scaled cosine to each criterion's (present, absent) anchors
    embeddings: torch.Tensor  # [B, C, D_text] unit-norm concept embeddings in the text space
    pooled: torch.Tensor  # [B, D_text] unit-norm mean concept embedding: the study in the shared space

    @property
    def criterion_probs(self) -> torch.Tensor:
        """[B, C] probability that each criterion reads as present."""
        return self.anchor_logits.softmax(-1)[..., 0]


class ConceptAligner(FindingsHead):
    def __init__(
        self,
        text_encoder: TextEncoder,
        in_dim: int | None = None,
        criteria: str = "chexpert",
        dim: int = 256,
        heads: int = 4,
        layers: int = 1,
        dropout: float = 0.1,
        temperature: float = 0.07,
        alignment_weight: float = 1.0,
        threshold: float = 0.5,
        blank: Literal["negative", "ignore"] = "negative",
    ) -> None:
        self.criteria = load_criteria(criteria)
        diseases = list(dict.fromkeys(c.disease for c in self.criteria))
        super().__init__(diseases, threshold, blank)
        self.alignment_weight = alignment_weight
        self.register_buffer("disease_of", torch.tensor([diseases.index(c.disease) for c in self.criteria]),
                             persistent=False)
        # Anchors are saved with the weights: a restored head compares against exactly the anchors
        # it was trained on, whatever text encoder is (re)built around it.
        self.register_buffer("anchors", self._embed_anchors(text_encoder))  # [C, 2, D_text]
        text_dim = self.anchors.shape[-1]

        self.dim = dim
        self.visual_proj: nn.Module | None = None
        if in_dim is not None:
            self.bind_input(in_dim)
        self.concept_queries = nn.Parameter(torch.randn(len(self.criteria), dim) * 0.02)
        layer = nn.TransformerDecoderLayer(dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True)
        self.attend = nn.TransformerDecoder(layer, layers)
        self.text_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, text_dim))
        self.log_scale = nn.Parameter(torch.tensor(1.0 / temperature).log())
        # Each disease starts as the mean evidence of its criteria; training reweights within it.
        per_disease = torch.bincount(self.disease_of, minlength=self.num_labels).float()
        self.evidence_weight = nn.Parameter(1.0 / per_disease[self.disease_of])
        self.bias = nn.Parameter(torch.zeros(self.num_labels))

    def _build_input_layers(self, dim: int) -> None:
        self.visual_proj = nn.Linear(dim, self.dim)

    @torch.no_grad()
    def _embed_anchors(self, text_encoder: TextEncoder) -> torch.Tensor:
        texts = [text for c in self.criteria for text in (c.present, c.absent)]
        was_training = text_encoder.training
        text_encoder.eval()
        pooled = text_encoder(texts).pooled.float().cpu()
        text_encoder.train(was_training)
        return F.normalize(pooled, dim=-1).view(len(self.criteria), 2, -1)

    def align(self, features: Features) -> ConceptOutput:
        if self.visual_proj is None:
            raise RuntimeError("ConceptAligner needs its input width: pass in_dim or call bind_input(dim)")
        memory = self.visual_proj(features.tokens)
        padding = None if features.mask is None else ~features.mask
        queries = self.concept_queries.unsqueeze(0).expand(memory.shape[0], -1, -1)
        concepts = self.attend(queries, memory, memory_key_padding_mask=padding)
        embeddings = F.normalize(self.text_proj(concepts), dim=-1)  # [B, C, D_text]
        scale = self.log_scale.exp().clamp(max=100)  # CLIP's cap keeps the softmax from saturating
        anchor_logits = scale * torch.einsum("bcd,cad->bca", embeddings, self.anchors.to(embeddings.dtype))
        evidence = (anchor_logits[..., 0] - anchor_logits[..., 1]) * self.evidence_weight  # [B, C]
        logits = torch.zeros(evidence.shape[0], self.num_labels, dtype=evidence.dtype, device=evidence.device)
        logits = logits.index_add(1, self.disease_of, evidence) + self.bias
        pooled = F.normalize(embeddings.mean(1), dim=-1)
        return ConceptOutput(logits, anchor_logits, embeddings, pooled)

    def forward(self, features: Features) -> torch.Tensor:
        return self.align(features).logits

    def alignment_loss(self, output: ConceptOutput, labels: torch.Tensor) -> torch.Tensor:
        """InfoNCE of each concept over its anchors; the target anchor states the disease's label.
        Entries count as in the classification loss (`targets`)."""
        present, known = self.targets(labels[:, self.disease_of])  # [B, C]
        target = (present == 0).long()  # anchor 0 = present, 1 = absent
        nll = F.cross_entropy(output.anchor_logits.flatten(0, 1), target.flatten(), reduction="none")
        return (nll * known.flatten()).sum() / known.sum().clamp_min(1)

    def total_loss(self, output: ConceptOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        classification = self.loss(output.logits, labels)
        alignment = self.alignment_loss(output, labels)
        return {"loss": classification + self.alignment_weight * alignment,
                "classification": classification, "alignment": alignment}

    def scored_concepts(self, output: ConceptOutput, threshold: float | None = None) -> list[list[tuple[str, float]]]:
        """Per study, the recognised diseases with their probability, each followed by the present
        statements of its criteria that read as present: what the LLM prompt carries."""
        threshold = self.threshold if threshold is None else threshold
        disease_probs, criterion_probs = output.logits.sigmoid().tolist(), output.criterion_probs.tolist()
        studies = []
        for diseases, criteria in zip(disease_probs, criterion_probs):
            scored = []
            for name in names_from_row(torch.tensor(diseases), self.label_names, threshold):
                k = self.label_names.index(name)
                evidence = [self.criteria[c].present for c in range(len(self.criteria))
                            if self.disease_of[c] == k and criteria[c] >= 0.5]
                scored.append((f"{name}: {'; '.join(evidence)}" if evidence else name, diseases[k]))
            studies.append(scored)
        return studies

    def explain(self, output: ConceptOutput) -> list[dict[str, dict[str, float]]]:
        """Per study, every disease probability and every criterion's present-probability."""
        disease_probs, criterion_probs = output.logits.sigmoid().tolist(), output.criterion_probs.tolist()
        keys = [f"{c.disease} / {c.name}" for c in self.criteria]
        return [{"diseases": dict(zip(self.label_names, d)), "criteria": dict(zip(keys, c))}
                for d, c in zip(disease_probs, criterion_probs)]

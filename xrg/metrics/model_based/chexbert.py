"""CheXbert (Smit et al., 2020) as a labeler: a BERT encoder and 14 linear heads on [CLS].

Head layout of the released `chexbert.pth`: 13 heads with 4 classes (0 blank, 1 positive,
2 negative, 3 uncertain) in CheXbert's order below, then one No Finding head with 2 classes
(0 blank, 1 positive). CheXbert's order differs from CheXpert's (Lung Opacity before Lung
Lesion, No Finding last); outputs are returned in `CHEXPERT_LABELS` order.
f1chexbert's "CheXbert F1" is `ce/chexbert/micro5_u1/f1` of `chexbert_f1`.

Weights: the release f1chexbert and RadEval download, `chexbert.pth` of StanfordAIMI/RRG_scorers,
and bert-base-uncased's config and tokenizer, all through the Hugging Face hub (or its cache with
`HF_HUB_OFFLINE=1`); or local paths. This labeler stays xrg's own: f1chexbert 0.0.2 tokenizes
with `encode_plus`, which transformers 5 removed, and its download passes an argument
huggingface_hub 1.0 removed. A test shows that on the same weights (a checkpoint in the release's
layout) it gives the labels of RadEval's transformers-5 copy of f1chexbert.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from xrg.data.labels import CHEXPERT_LABELS
from xrg.metrics.model_based._loading import MissingWeightsError, loading

CHEXBERT_ORDER = (
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices", "No Finding",
)
CLASS_TO_CODE = (math.nan, 1.0, 0.0, -1.0)  # head class index -> CheXpert code
RELEASE = ("StanfordAIMI/RRG_scorers", "chexbert.pth")


def download_checkpoint() -> str:
    from huggingface_hub import hf_hub_download

    with loading("CheXbert", f"{RELEASE[0]}/{RELEASE[1]}"):
        return hf_hub_download(*RELEASE)


class ChexbertLabeler(nn.Module):
    """`checkpoint`: a chexbert.pth file, "hub" (the release, downloaded once), or None (random heads)."""

    name = "chexbert"

    def __init__(self, encoder: str = "bert-base-uncased", checkpoint: str | None = "hub", device: str = "cpu") -> None:
        super().__init__()
        from transformers import AutoTokenizer, BertConfig, BertModel

        with loading("CheXbert", f"the {encoder!r} config and tokenizer"):
            self.tokenizer = AutoTokenizer.from_pretrained(encoder)
            config = BertConfig.from_pretrained(encoder)
        self.bert = BertModel(config, add_pooling_layer=False)
        hidden = self.bert.config.hidden_size
        self.dropout = nn.Dropout(0.1)
        self.linear_heads = nn.ModuleList([nn.Linear(hidden, 4) for _ in range(13)] + [nn.Linear(hidden, 2)])
        if checkpoint is not None:
            self.load_checkpoint(download_checkpoint() if checkpoint == "hub" else checkpoint)
        self.eval().to(device)
        self.device_name = device

    def load_checkpoint(self, checkpoint: str | Path) -> None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"CheXbert: checkpoint {str(path)!r} not found (chexbert.pth of {RELEASE[0]})")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model_state_dict", state)
        # the release was saved from nn.DataParallel: keys start with "module."
        state = {key.removeprefix("module."): value for key, value in state.items()}
        state.pop("bert.embeddings.position_ids", None)
        # The release's BERT has a pooler CheXbert never reads (the heads sit on the [CLS] state).
        state = {key: value for key, value in state.items() if not key.startswith("bert.pooler.")}
        self.load_state_dict(state, strict=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        cls = self.dropout(self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0])
        return [head(cls) for head in self.linear_heads]

    @torch.no_grad()
    def label_matrix(self, reports: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        """Codes [N, 14] in CHEXPERT_LABELS order, NaN for blank."""
        rows = []
        for start in range(0, len(reports), batch_size):
            batch = self.tokenizer(list(reports[start:start + batch_size]), padding=True, truncation=True,
                                   max_length=512, return_tensors="pt").to(self.device_name)
            classes = torch.stack([logits.argmax(-1) for logits in self(batch["input_ids"], batch["attention_mask"])], 1)
            rows.append(torch.tensor(CLASS_TO_CODE)[classes.cpu()])
        codes = torch.cat(rows) if rows else torch.empty(0, 14)
        return codes[:, [CHEXBERT_ORDER.index(name) for name in CHEXPERT_LABELS]]


def chexbert_f1(labeler: ChexbertLabeler, generated: list[str], references: list[str]) -> dict[str, float]:
    """Every CE convention with CheXbert labels, keys `ce/chexbert/...`."""
    from xrg.metrics.ce import score_texts

    return score_texts(generated, references, labeler.label_matrix, labeler="chexbert")

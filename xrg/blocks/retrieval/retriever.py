"""`ReportRetriever`: nearest training reports in a space shared by images and reports.

space="image": keys are the training studies' own aligned image embeddings (what the task's
    concept aligner gives), so a query finds studies that look alike and returns their reports.
space="text": keys are report texts embedded by `text_encoder`; the query is the image's
    embedding in that text encoder's space (RadAlign's cross-modal retrieval: the concept
    aligner pulls image embeddings onto text anchors of the same encoder, so the widths match).

The text encoder is a tool for building the index, not a trained part of the model, so it is
kept out of the module tree (and out of checkpoints); the index files carry its output.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from xrg.blocks.encoders.base import TextEncoder
from xrg.blocks.retrieval.base import Retriever
from xrg.blocks.retrieval.index import Backend


class ReportRetriever(Retriever):
    def __init__(
        self,
        space: Literal["image", "text"] = "image",
        text_encoder: TextEncoder | None = None,
        k: int = 3,
        backend: Backend = "auto",
        faiss_index: str = "Flat",
        batch_size: int = 64,
    ) -> None:
        super().__init__(k, backend, faiss_index)
        if space not in ("image", "text"):
            raise ValueError(f"space must be 'image' or 'text', got {space!r}")
        if space == "text" and text_encoder is None:
            raise ValueError("space='text' embeds reports and needs a text_encoder")
        self.space = space
        self.batch_size = batch_size
        self._tools = {"text_encoder": text_encoder}  # a dict hides it from nn.Module registration

    @property
    def keys_from_images(self) -> bool:
        return self.space == "image"

    @property
    def text_encoder(self) -> TextEncoder | None:
        return self._tools["text_encoder"]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "space": self.space}

    @torch.no_grad()
    def embed_reports(self, reports: list[str]) -> torch.Tensor:
        if self.text_encoder is None:
            raise RuntimeError("this retriever has no text encoder to embed reports with")
        encoder = self.text_encoder
        was_training = encoder.training
        encoder.eval()
        chunks = [encoder(reports[i:i + self.batch_size]).pooled.float().cpu()
                  for i in range(0, len(reports), self.batch_size)]
        encoder.train(was_training)
        return torch.cat(chunks)

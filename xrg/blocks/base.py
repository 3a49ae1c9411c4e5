"""What every block shares (`Block`, the `Features` they pass), and blocks that own a tokenizer."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Iterable, NamedTuple

import torch
from torch import nn

from xrg.data.tokenizers import Tokenizer, tokenizer_from_state


class Features(NamedTuple):
    tokens: torch.Tensor  # [B, N, D]
    pooled: torch.Tensor  # [B, D]
    mask: torch.Tensor | None = None  # [B, N], True where a token is real (None: all real)
    views: int = 1  # the N tokens are this many views' equal-length token sets, side by side
    appended: int = 0  # ... except the last `appended`, which a guide added after them (findings tokens)


class Block(nn.Module):
    """What every block shares: freezing, and reporting what it trains."""

    _frozen = False

    def freeze(self) -> None:
        """No gradients, and eval mode for good: a frozen block is the same function in every
        stage, so its BatchNorm statistics and dropout must not change while the task trains."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self._frozen = True
        self.eval()

    @property
    def is_frozen(self) -> bool:
        return self._frozen

    def train(self, mode: bool = True) -> "Block":
        return super().train(mode and not self._frozen)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class VocabularyOwner(Block):
    """A block with a tokenizer and layers sized by its vocabulary (decoders, a Q-Former's BERT).

    The tokenizer's state is module *extra state*: it is written into every state_dict and
    checkpoint, and `load_state_dict` restores it before the vocabulary-sized child layers load
    (PyTorch loads a module's own state before its children), so a checkpoint alone rebuilds the
    block, no annotation file needed.
    """

    tokenizer: Tokenizer

    @property
    @abstractmethod
    def is_built(self) -> bool:
        """Whether the vocabulary-sized layers exist."""

    @abstractmethod
    def _build_vocab_layers(self) -> None:
        """Create the layers whose size depends on the tokenizer."""

    def prepare(self, train_reports: Iterable[str]) -> None:
        """Fit the tokenizer if it needs data, then build the layers sized by its vocabulary."""
        if not self.tokenizer.is_fitted:
            self.tokenizer.fit(train_reports)
        if not self.is_built:
            self._build_vocab_layers()

    def get_extra_state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        restored = tokenizer_from_state(state["tokenizer"])
        if not restored.is_fitted:
            return
        if self.is_built and self.tokenizer.state_dict() != restored.state_dict():
            raise ValueError(
                f"the checkpoint's tokenizer differs from this {type(self).__name__}'s already-built "
                "vocabulary; load the checkpoint into a fresh model instead"
            )
        self.tokenizer = restored
        if not self.is_built:
            self._build_vocab_layers()

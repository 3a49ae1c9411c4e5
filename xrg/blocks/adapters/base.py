"""The adapter contract: trainable modules inserted into frozen encoders and between them."""

from __future__ import annotations

from abc import ABC, abstractmethod

from xrg.blocks.encoders.base import Block, ImageEncoder, TextEncoder


class Adapter(Block, ABC):
    """Adapts (usually frozen) encoders without changing their weights.

    An adapter is constructed from its own settings only (widths, insertion points), so a
    recipe can name it; `attach` then sizes its modules for the encoders it will run between,
    which is when the encoders' widths and stage shapes are known.
    """

    @abstractmethod
    def attach(self, image_encoder: ImageEncoder | None, text_encoder: TextEncoder | None) -> None:
        """Build the adapter's modules for these encoders (called once, by the block using it)."""

    def trainable_parameter_names(self) -> list[str]:
        """Names (relative to this adapter) of the parameters it trains."""
        return [name for name, p in self.named_parameters() if p.requires_grad]

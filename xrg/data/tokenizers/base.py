"""The one tokenizer interface every decoder and text encoder uses.

A tokenizer's whole state is a JSON-able dict (`state_dict()`), stored inside the model's
state_dict as module extra state, so a checkpoint never needs the annotation file again.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterable

import torch


class Tokenizer(ABC):
    pad_id: int
    bos_id: int
    eos_id: int

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    def is_fitted(self) -> bool:
        """Whether the vocabulary exists; a word vocabulary is built from training reports."""
        return True

    def fit(self, texts: Iterable[str]) -> None:
        """Build the vocabulary from (cleaned) training reports; pretrained tokenizers ignore this."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without special tokens."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`, skipping special tokens and stopping at the first end-of-sequence."""

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def _from_state(cls, state: dict[str, Any]) -> "Tokenizer": ...

    def state_dict(self) -> dict[str, Any]:
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", **self._state()}

    def batch_encode(self, texts: list[str], max_length: int) -> torch.Tensor:
        """`[B, T]` ids framed as BOS ... EOS, truncated to `max_length` tokens in all, padded."""
        rows = [[self.bos_id, *self.encode(t)[: max_length - 2], self.eos_id] for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids

    def until_eos(self, ids: Iterable[int]) -> list[int]:
        """The ids before the first end-of-sequence (generation pads after it)."""
        kept = []
        for i in ids:
            if int(i) == self.eos_id:
                break
            kept.append(int(i))
        return kept

    def batch_decode(self, ids: torch.Tensor | list[list[int]]) -> list[str]:
        rows = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return [self.decode(r) for r in rows]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.state_dict()))
        return path

    @staticmethod
    def load(directory: str | Path) -> "Tokenizer":
        return tokenizer_from_state(json.loads((Path(directory) / "tokenizer.json").read_text()))


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild any tokenizer from `state_dict()`; only xrg tokenizer classes are accepted."""
    class_path = state.get("class_path", "")
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name.startswith("xrg."):
        raise ValueError(f"tokenizer state names {class_path!r}; expected an xrg tokenizer class")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Tokenizer)):
        raise ValueError(f"{class_path!r} is not a Tokenizer")
    return cls._from_state({k: v for k, v in state.items() if k != "class_path"})

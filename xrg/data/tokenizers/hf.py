"""Any Hugging Face tokenizer, by hub name or local directory; its files travel in the checkpoint."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Any, Iterable

from xrg.data.tokenizers.base import Tokenizer


class HFTokenizer(Tokenizer):
    """Wraps `transformers.AutoTokenizer`.

    The tokenizer's files are read into `state_dict()`, so a checkpoint restores the exact
    tokenizer even where the hub name is unreachable or the local directory is gone.
    """

    def __init__(self, name_or_path: str, files: dict[str, str] | None = None) -> None:
        from transformers import AutoTokenizer

        self.name_or_path = name_or_path
        if files is None:
            self._hf = AutoTokenizer.from_pretrained(name_or_path)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                for name, encoded in files.items():
                    (Path(tmp) / name).write_bytes(base64.b64decode(encoded))
                self._hf = AutoTokenizer.from_pretrained(tmp)
        # Models without dedicated BOS/EOS (BERT) frame sequences with CLS/SEP instead.
        hf = self._hf
        self.bos_id = _first_id(hf.bos_token_id, hf.cls_token_id)
        self.eos_id = _first_id(hf.eos_token_id, hf.sep_token_id)
        self.pad_id = _first_id(hf.pad_token_id, self.eos_id)

    @property
    def hf(self):
        """The wrapped `transformers` tokenizer (chat templates, special tokens)."""
        return self._hf

    @property
    def vocab_size(self) -> int:
        return len(self._hf)

    def encode(self, text: str) -> list[int]:
        return self._hf.encode(text, add_special_tokens=False)

    def decode(self, ids: Iterable[int]) -> str:
        return self._hf.decode(self.until_eos(ids), skip_special_tokens=True).strip()

    def _state(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            self._hf.save_pretrained(tmp)
            # base64 keeps binary vocabularies (sentencepiece models) safe in a weights_only checkpoint
            files = {
                p.name: base64.b64encode(p.read_bytes()).decode("ascii")
                for p in Path(tmp).iterdir()
                if p.is_file()
            }
        return {"name_or_path": self.name_or_path, "files": files}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> "HFTokenizer":
        return cls(state["name_or_path"], files=state["files"])


def _first_id(*candidates: int | None) -> int:
    for candidate in candidates:
        if candidate is not None:
            return int(candidate)
    raise ValueError("tokenizer defines none of BOS/CLS, EOS/SEP: set them on the tokenizer first")

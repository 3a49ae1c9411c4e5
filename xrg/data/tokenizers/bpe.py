"""A byte-level BPE fitted on the training reports, for CPU-size LLM recipes with random weights.

Byte-level means no text is ever unknown: prompt wording absent from the reports still encodes
(as shorter pieces). The special tokens use Llama's spellings, so the same chat formats
(`</s>` closing a turn) work for this tokenizer and a real Llama/Vicuna one.
"""

from __future__ import annotations

from typing import Any, Iterable

from xrg.data.tokenizers.base import Tokenizer

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


class BPETokenizer(Tokenizer):
    """`tokenizers` byte-level BPE with `vocab_size` entries; state is the tokenizer's JSON.

    `extra_special_tokens` are added as single, never-split tokens (e.g. chat-role markers such
    as `<|im_start|>` when a recipe uses that chat format).
    """

    pad_id, bos_id, eos_id, unk_id = range(4)

    def __init__(
        self,
        vocab_size: int = 1000,
        extra_special_tokens: list[str] | None = None,
        tokenizer_json: str | None = None,
    ) -> None:
        self.target_vocab_size = vocab_size
        self.extra_special_tokens = list(extra_special_tokens or [])
        self._tok = None
        if tokenizer_json is not None:
            from tokenizers import Tokenizer as RustTokenizer

            self._tok = RustTokenizer.from_str(tokenizer_json)

    @property
    def is_fitted(self) -> bool:
        return self._tok is not None

    @property
    def vocab_size(self) -> int:
        self._require_fitted()
        return self._tok.get_vocab_size()

    def fit(self, texts: Iterable[str]) -> None:
        from tokenizers import Tokenizer as RustTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tok = RustTokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.target_vocab_size,
            special_tokens=[*SPECIALS, *self.extra_special_tokens],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise ValueError("BPETokenizer.fit got no non-empty training text")
        tok.train_from_iterator(texts, trainer=trainer)
        self._tok = tok

    def encode(self, text: str) -> list[int]:
        self._require_fitted()
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        self._require_fitted()
        return self._tok.decode(self.until_eos(ids), skip_special_tokens=True).strip()

    def token_to_id(self, token: str) -> int | None:
        self._require_fitted()
        return self._tok.token_to_id(token)

    def _require_fitted(self) -> None:
        if self._tok is None:
            raise RuntimeError("BPETokenizer has no vocabulary yet: call fit(training_reports)")

    def _state(self) -> dict[str, Any]:
        return {
            "vocab_size": self.target_vocab_size,
            "extra_special_tokens": self.extra_special_tokens,
            "tokenizer_json": None if self._tok is None else self._tok.to_str(),
        }

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> "BPETokenizer":
        return cls(state["vocab_size"], state["extra_special_tokens"], state["tokenizer_json"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and other.state_dict() == self.state_dict()

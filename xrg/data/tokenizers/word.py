"""R2Gen's word vocabulary: whitespace tokens of cleaned reports kept when frequent enough."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from xrg.data.tokenizers.base import Tokenizer

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


class WordTokenizer(Tokenizer):
    """Words seen at least `threshold` times in the training reports (R2Gen: 3 IU, 10 MIMIC).

    Reports are expected already cleaned (lowercase, " . " between sentences), so splitting on
    whitespace is the whole tokenization and "." stays a token, as in R2Gen.
    """

    pad_id, bos_id, eos_id, unk_id = range(4)

    def __init__(self, threshold: int = 3, words: list[str] | None = None) -> None:
        self.threshold = threshold
        self._words: list[str] = []
        self._index: dict[str, int] = {}
        if words is not None:
            self._set_words(words)

    def _set_words(self, words: list[str]) -> None:
        self._words = list(SPECIALS) + list(words)
        self._index = {w: i for i, w in enumerate(self._words)}

    @property
    def is_fitted(self) -> bool:
        return bool(self._words)

    @property
    def vocab_size(self) -> int:
        return len(self._words)

    def fit(self, texts: Iterable[str]) -> None:
        counts = Counter(word for text in texts for word in text.split())
        kept = sorted(w for w, n in counts.items() if n >= self.threshold and w not in SPECIALS)
        if not kept:
            raise ValueError(f"no word occurs {self.threshold} times in the training reports")
        self._set_words(kept)

    def encode(self, text: str) -> list[int]:
        if not self.is_fitted:
            raise RuntimeError("WordTokenizer has no vocabulary yet: call fit(training_reports)")
        return [self._index.get(w, self.unk_id) for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self._words[i] for i in self.until_eos(ids) if i > self.unk_id)

    def _state(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "words": self._words[len(SPECIALS):]}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> "WordTokenizer":
        return cls(threshold=state["threshold"], words=state["words"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and other._words == self._words

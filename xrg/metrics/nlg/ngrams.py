"""Vectorised n-gram counting shared by BLEU and CIDEr-D.

pycocoevalcap counts n-grams with a Python ``defaultdict`` per sentence. Here every text of the
evaluated set becomes integer token ids once, and for each order one sort of
(n-gram, pair, side) keys yields everything both metrics need: the count of each n-gram in each
hypothesis and reference, dense n-gram ids (for document frequencies), and, because a pair's
hypothesis and reference entries of the same n-gram end up adjacent, the shared n-grams.
Tokenisation is ``str.split()``, exactly what pycocoevalcap's ``precook`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

_KEY_LIMIT = 2**62  # keep composite keys well inside int64


@dataclass(frozen=True)
class NgramCounts:
    """Distinct (n-gram, pair, side) entries of one order, sorted in that order."""

    gram: np.ndarray  # int64 dense n-gram id, 0 .. num_grams - 1
    pair: np.ndarray  # int64 pair index
    is_ref: np.ndarray  # bool: counted in the reference (else in the hypothesis)
    count: np.ndarray  # int64 occurrences
    num_grams: int

    def shared(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (hyp entry, ref entry) of n-grams present in both texts of a pair."""
        same = (self.gram[1:] == self.gram[:-1]) & (self.pair[1:] == self.pair[:-1])
        hyp = np.flatnonzero(same & ~self.is_ref[:-1] & self.is_ref[1:])
        return hyp, hyp + 1


@dataclass(frozen=True)
class EncodedPairs:
    """The tokens of N (hypothesis, reference) pairs as flat integer arrays.

    Texts 0..N-1 are the hypotheses and N..2N-1 the references; ``text[i]`` says which text
    token ``ids[i]`` belongs to, and tokens of a text are contiguous and in order.
    """

    ids: np.ndarray
    text: np.ndarray
    num_pairs: int
    vocabulary_size: int

    @classmethod
    def from_tokens(cls, hypotheses: list[list[str]], references: list[list[str]]) -> EncodedPairs:
        token_lists = hypotheses + references
        flat = list(chain.from_iterable(token_lists))
        vocabulary = {word: index for index, word in enumerate(dict.fromkeys(flat))}
        ids = np.fromiter(map(vocabulary.__getitem__, flat), dtype=np.int64, count=len(flat))
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        text = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
        return cls(ids, text, len(hypotheses), max(len(vocabulary), 1))

    @property
    def lengths(self) -> np.ndarray:
        """[2N] number of tokens of each text."""
        return np.bincount(self.text, minlength=2 * self.num_pairs)

    def position(self) -> np.ndarray:
        """Index of each token inside its text."""
        lengths = self.lengths
        return np.arange(self.ids.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def count_ngrams(encoded: EncodedPairs, max_order: int = 4) -> list[NgramCounts]:
    """Counts of the n-grams of orders 1..max_order (entry k-1 is order k) of each pair's texts."""
    ids, text, num_pairs = encoded.ids, encoded.text, encoded.num_pairs
    is_ref_token = text >= num_pairs
    token_pair = np.where(is_ref_token, text - num_pairs, text)
    start = np.arange(ids.size)  # first token position of each n-gram still alive
    gram, num_grams = ids, encoded.vocabulary_size
    result = []
    for order in range(1, max_order + 1):
        if order > 1:
            # An order-k gram is an order-(k-1) gram extended by the next token of the same text.
            alive = start + order - 1 < ids.size
            alive[alive] &= text[start[alive] + order - 1] == text[start[alive]]
            start, gram = start[alive], gram[alive]
            gram = gram * encoded.vocabulary_size + ids[start + order - 1]
            num_grams *= encoded.vocabulary_size
            if num_grams * 2 * max(num_pairs, 1) >= _KEY_LIMIT:
                unique_grams, gram = np.unique(gram, return_inverse=True)
                num_grams = unique_grams.size
        side = is_ref_token[start].astype(np.int64)
        key = (gram * num_pairs + token_pair[start]) * 2 + side
        # Token ids are already dense and the last order feeds no next order: no inverse needed.
        needs_dense = 1 < order < max_order
        keys, *inverse, counts = np.unique(key, return_inverse=needs_dense, return_counts=True)
        raw_gram, rest = np.divmod(keys, 2 * num_pairs)
        if order == 1:
            dense_gram = raw_gram
        else:
            dense_gram = np.concatenate(([False], raw_gram[1:] != raw_gram[:-1])).cumsum()
            num_grams = int(dense_gram[-1]) + 1 if dense_gram.size else 1
        result.append(NgramCounts(dense_gram, rest // 2, (rest % 2).astype(bool), counts, num_grams))
        if needs_dense:
            gram = dense_gram[inverse[0]]
    return result

"""ROUGE-L exactly as pycocoevalcap 1.2's ``Rouge``: LCS on ``split(" ")`` tokens, F-measure with
beta = 1.2, averaged over pairs (a mean of per-pair scores, not a corpus statistic).

pycocoevalcap fills an O(n*m) Python table per pair. Here the LCS lengths of all pairs come from
the bit-parallel algorithm of Allison & Dix (1986) / Hyyro (2004), run on all pairs at once: the
shorter text of each pair is a row of 64-bit words, each token of the longer text updates every
row with a few numpy operations, so the Python loop runs once per token position, not per pair.
"""

from __future__ import annotations

import numpy as np

from xrg.metrics.nlg.ngrams import EncodedPairs

BETA = 1.2
_WORD = 64


def _add_multiword(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b for unsigned integers stored as [rows, words] little-endian uint64 words."""
    total = np.empty_like(a)
    carry = np.zeros(a.shape[0], dtype=np.uint64)
    for word in range(a.shape[1]):
        partial = a[:, word] + b[:, word]
        with_carry = partial + carry
        carry = ((partial < a[:, word]) | (with_carry < partial)).astype(np.uint64)
        total[:, word] = with_carry
    return total


def lcs_lengths(encoded: EncodedPairs) -> np.ndarray:
    """Longest-common-subsequence length of each (hypothesis, reference) pair."""
    num_pairs, ids, vocabulary_size = encoded.num_pairs, encoded.ids, encoded.vocabulary_size
    lengths, position = encoded.lengths, encoded.position()
    pair = np.where(encoded.text >= num_pairs, encoded.text - num_pairs, encoded.text)
    hyp_is_short = lengths[:num_pairs] <= lengths[num_pairs:]
    is_short = (encoded.text < num_pairs) == hyp_is_short[pair]
    short_len = np.minimum(lengths[:num_pairs], lengths[num_pairs:])
    long_len = np.maximum(lengths[:num_pairs], lengths[num_pairs:])

    # Match masks: for each (pair, token of its shorter text), the bit set of its positions.
    keys, slot = np.unique(pair[is_short] * vocabulary_size + ids[is_short], return_inverse=True)
    num_words = max(1, -(-int(short_len.max()) // _WORD))
    masks = np.zeros((keys.size + 1, num_words), dtype=np.uint64)  # last row: "no match"
    short_pos = position[is_short]
    np.add.at(masks, (slot, short_pos // _WORD), np.left_shift(np.uint64(1), (short_pos % _WORD).astype(np.uint64)))

    # Rows ordered by decreasing long length, so step j only touches the rows still running.
    order = np.argsort(-long_len, kind="stable")
    long_ids = np.full((num_pairs, int(long_len.max()) if num_pairs else 0), -1, dtype=np.int64)
    long_ids[pair[~is_short], position[~is_short]] = ids[~is_short]
    long_ids, pair_of_row = long_ids[order], order
    running = np.searchsorted(-long_len[order], -np.arange(long_ids.shape[1]), side="left")

    bit = np.arange(num_words * _WORD).reshape(num_words, _WORD)
    low_bits = (bit < short_len[pair_of_row, None, None]).astype(np.uint64)  # [rows, words, 64]
    all_ones = (low_bits << np.arange(_WORD, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
    column = all_ones.copy()
    for step, rows in enumerate(running):
        key = pair_of_row[:rows] * vocabulary_size + long_ids[:rows, step]
        found = np.minimum(np.searchsorted(keys, key), max(keys.size - 1, 0))
        hit = keys[found] == key if keys.size else np.zeros(rows, dtype=bool)
        matched = column[:rows] & masks[np.where(hit, found, keys.size)]
        # (S + U) | (S - U); U is a subset of S's bits, so S - U needs no borrow: S & ~U.
        column[:rows] = _add_multiword(column[:rows], matched) | (column[:rows] & ~matched)
    zeros = np.unpackbits((all_ones & ~column).view(np.uint8), axis=1).sum(axis=1)
    lcs = np.empty(num_pairs, dtype=np.int64)
    lcs[pair_of_row] = zeros
    return lcs


def rouge_l(encoded: EncodedPairs) -> np.ndarray:
    """Per-pair ROUGE-L F-measure (beta 1.2) of pairs tokenised with ``split(" ")``, with
    pycocoevalcap's float arithmetic."""
    lcs = lcs_lengths(encoded).astype(np.float64)
    lengths = encoded.lengths.astype(np.float64)
    precision = lcs / lengths[: encoded.num_pairs]
    recall = lcs / lengths[encoded.num_pairs :]
    beta2 = BETA**2
    with np.errstate(invalid="ignore", divide="ignore"):
        score = ((1 + beta2) * precision * recall) / (recall + beta2 * precision)
    return np.where((precision != 0) & (recall != 0), score, 0.0)

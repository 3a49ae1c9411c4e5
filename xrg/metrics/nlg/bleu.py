"""BLEU-1..4 exactly as pycocoevalcap 1.2's ``Bleu(4)`` (David Chiang's bleu_scorer).

Its quirks are kept because published numbers depend on them: every precision is
``(matches + 1e-15) / (guesses + 1e-9)`` (so an empty hypothesis scores ~0, not NaN), the
reference length is the 'closest' one (with one reference per study, simply its length), and the
brevity penalty uses the same epsilons. Corpus BLEU sums the counts over all pairs first.
"""

from __future__ import annotations

import numpy as np

from xrg.metrics.nlg.ngrams import NgramCounts

TINY = 1e-15  # added to matches: a hypothesis with no n-grams scores 0, not 0/0
SMALL = 1e-9  # added to guesses and the reference length


def clipped_matches(counts: list[NgramCounts], num_pairs: int) -> np.ndarray:
    """[num_pairs, orders] hypothesis n-gram counts clipped by the reference counts."""
    matches = np.zeros((num_pairs, len(counts)), dtype=np.int64)
    for order, ngrams in enumerate(counts):
        hyp, ref = ngrams.shared()
        clipped = np.minimum(ngrams.count[hyp], ngrams.count[ref])
        matches[:, order] = np.bincount(ngrams.pair[hyp], weights=clipped, minlength=num_pairs).astype(np.int64)
    return matches


def guesses(hyp_len: np.ndarray, orders: int) -> np.ndarray:
    """[..., orders] number of n-grams of each order in hypotheses of the given lengths."""
    order = np.arange(1, orders + 1)
    return np.maximum(0, hyp_len[..., None] - order + 1)


def bleu_from_counts(matches: np.ndarray, guesses: np.ndarray, hyp_len: np.ndarray, ref_len: np.ndarray) -> np.ndarray:
    """BLEU-1..K from (summed) counts; leading dims are batch dims, the last one is the order.

    Called with per-pair rows it gives pycocoevalcap's sentence-level BLEU, with totals the
    corpus BLEU, with bootstrap totals one corpus BLEU per resample.
    """
    precision = (matches.astype(np.float64) + TINY) / (guesses.astype(np.float64) + SMALL)
    orders = np.arange(1, matches.shape[-1] + 1)
    score = np.cumprod(precision, axis=-1) ** (1.0 / orders)
    ratio = (np.asarray(hyp_len, dtype=np.float64) + TINY) / (np.asarray(ref_len, dtype=np.float64) + SMALL)
    with np.errstate(divide="ignore"):
        brevity = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return score * brevity[..., None]

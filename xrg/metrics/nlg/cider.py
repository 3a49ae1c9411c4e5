"""CIDEr-D exactly as pycocoevalcap 1.2's ``Cider`` (which, despite its name, is CIDEr-D).

Per order n = 1..4: tf-idf vectors with idf = log(N) - log(max(1, df)), where df counts the
references *of the evaluated set* that contain the n-gram and N is the number of pairs; the
hypothesis weight is clipped at the reference's (min(h, r) * r); cosine normalisation; a
Gaussian length penalty exp(-delta^2 / (2 sigma^2)) with sigma = 6. The four orders are averaged
and multiplied by 10. One pycocoevalcap quirk is kept: delta is the difference of the *bigram*
counts (its ``length`` accumulates at n-gram index 1), i.e. of (length - 1) for non-empty texts.
"""

from __future__ import annotations

import numpy as np

from xrg.metrics.nlg.ngrams import NgramCounts

SIGMA = 6.0


def _per_pair_sum(pair: np.ndarray, values: np.ndarray, num_pairs: int) -> np.ndarray:
    return np.bincount(pair, weights=values, minlength=num_pairs)


def cider_d(counts: list[NgramCounts], hyp_len: np.ndarray, ref_len: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """Per-pair CIDEr-D from the n-gram counts of the evaluated pairs."""
    num_pairs = hyp_len.shape[0]
    log_num_refs = np.log(float(num_pairs))
    delta = (np.maximum(hyp_len - 1, 0) - np.maximum(ref_len - 1, 0)).astype(np.float64)
    penalty = np.e ** (-(delta**2) / (2 * sigma**2))
    similarity = np.zeros((num_pairs, len(counts)))
    for order, ngrams in enumerate(counts):
        document_frequency = np.bincount(ngrams.gram[ngrams.is_ref], minlength=ngrams.num_grams).astype(np.float64)
        idf = log_num_refs - np.log(np.maximum(1.0, document_frequency))
        weight = ngrams.count.astype(np.float64) * idf[ngrams.gram]
        squared = weight**2
        norm_hyp = np.sqrt(_per_pair_sum(ngrams.pair[~ngrams.is_ref], squared[~ngrams.is_ref], num_pairs))
        norm_ref = np.sqrt(_per_pair_sum(ngrams.pair[ngrams.is_ref], squared[ngrams.is_ref], num_pairs))
        hyp, ref = ngrams.shared()
        clipped = np.minimum(weight[hyp], weight[ref]) * weight[ref]
        dot = _per_pair_sum(ngrams.pair[hyp], clipped, num_pairs)
        normalisable = (norm_hyp != 0) & (norm_ref != 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            dot = np.where(normalisable, dot / (norm_hyp * norm_ref), dot)
        similarity[:, order] = dot * penalty
    return similarity.mean(axis=1) * 10.0

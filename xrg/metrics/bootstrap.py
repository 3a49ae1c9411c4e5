"""Bootstrap 95% confidence intervals for one system, and paired significance tests between two.

Studies are resampled with replacement and the corpus metric is recomputed on each resample. A
resample is a vector of study multiplicities, and every metric family scores a whole matrix of
them at once (a "scorer": weights [B, M] over M rows -> {key: [B] scores}):
- NLG (``PairStats.corpus``): BLEU-1..4 recomputed from the weighted n-gram counts (the same
  function as the point estimate), ROUGE-L the weighted mean of per-pair scores, CIDEr-D the
  weighted mean of per-pair scores whose document frequencies are those of the full evaluated set
  (recounting them would let duplicated studies inflate df).
- per-study means (model-based metrics: RadGraph F1, BERTScore, RaTEScore, GREEN): weighted means.
- clinical efficacy: the label rows of each resample scored by ``ce_from_labels`` itself.
METEOR is not resampled: its corpus score is aggregated inside the jar from per-pair statistics,
and rescoring 1000 resamples through it would cost minutes.

Paired comparison of systems A and B on the same studies (what RadEval's ``compare_systems``
offers): the scorer sees 2N rows, A's N studies then B's. Paired bootstrap: the same resampled
studies for both, giving an interval for B - A. Approximate randomisation: each study's two
outputs are swapped between the systems with probability 1/2, and the p-value is the share of
shuffles whose |B - A| reaches the observed one, (count + 1) / (shuffles + 1).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from xrg.metrics.nlg.scores import PairStats

Scorer = Callable[[np.ndarray], dict[str, np.ndarray]]

BOOTSTRAP_NOTE = (
    "95% percentile intervals over resampled studies; BLEU recomputed from resampled n-gram "
    "counts, ROUGE-L exact, CIDEr-D with the full set's document frequencies, METEOR not bootstrapped"
)
COMPARE_NOTE = (
    "B - A per metric on the same studies: paired bootstrap percentile interval and two-sided "
    "approximate-randomisation p-value ((count + 1) / (shuffles + 1)); METEOR not resampled"
)


def multiplicities(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """[size, n] counts of each study in `size` bootstrap resamples of n studies."""
    picks = rng.integers(0, n, size=(size, n))
    rows = np.repeat(np.arange(size), n)
    return np.bincount(rows * n + picks.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def mean_scorer(per_sample: dict[str, np.ndarray]) -> Scorer:
    """Scores that are the mean over studies of a per-study value."""
    values = {key: np.asarray(v, dtype=np.float64) for key, v in per_sample.items()}
    return lambda weights: {key: weights @ v / weights.sum(1) for key, v in values.items()}


def labels_scorer(pred, ref, empty, labeler: str) -> Scorer:
    """Clinical efficacy of the label rows (torch [M, 14] matrices) repeated by their weights."""
    import torch

    from xrg.metrics.ce import ce_from_labels

    def score(weights: np.ndarray) -> dict[str, np.ndarray]:
        rows: dict[str, list[float]] = {}
        for row in weights:
            index = torch.from_numpy(np.repeat(np.arange(len(row)), row.astype(np.int64)))
            for key, value in ce_from_labels(pred[index], ref[index], labeler, empty=empty[index]).items():
                rows.setdefault(key, []).append(value)
        return {key: np.asarray(values) for key, values in rows.items()}

    return score


def concatenate_stats(first: PairStats, second: PairStats) -> PairStats:
    """One PairStats over first's pairs then second's (both scored against the same references)."""
    return PairStats(*(np.concatenate([getattr(first, f), getattr(second, f)]) for f in PairStats.__dataclass_fields__))


def _chunks(total: int, chunk: int):
    for start in range(0, total, chunk):
        yield min(chunk, total - start)


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_intervals(
    stats: PairStats | Scorer, resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
    chunk: int = 250, n: int | None = None,
) -> dict[str, tuple[float, float]]:
    """(low, high) percentile interval of every score of `stats` (a PairStats, or a scorer over `n` studies)."""
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    scorer, n = (stats.corpus, len(stats)) if isinstance(stats, PairStats) else (stats, n)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {}
    for size in _chunks(resamples, chunk):
        for key, values in scorer(multiplicities(rng, size, n)).items():
            draws.setdefault(key, []).append(np.asarray(values))
    return {key: _interval(np.concatenate(chunks), confidence) for key, chunks in draws.items()}


def paired_comparison(
    scorers: Sequence[Scorer], n: int, resamples: int = 1000, seed: int = 0, confidence: float = 0.95, chunk: int = 250
) -> dict[str, dict[str, float | list[float]]]:
    """{key: {"a", "b", "delta", "ci", "p_value"}} for scorers over 2n rows (A's studies, then B's)."""
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    rng = np.random.default_rng(seed)
    a_only = np.concatenate([np.ones(n), np.zeros(n)])[None]
    point, deltas, shuffled = {}, {}, {}
    for scorer in scorers:
        for key, value in scorer(np.concatenate([a_only, 1 - a_only])).items():
            point[key] = (float(value[0]), float(value[1]))
    for size in _chunks(resamples, chunk):
        weights = multiplicities(rng, size, n)
        swap = rng.random((size, n)) < 0.5
        # rows 0..size-1: the resampled A and B; then the shuffled "A" and "B"
        as_a = np.concatenate([np.hstack([weights, 0 * weights]), np.hstack([~swap, swap]).astype(np.float64)])
        as_b = np.concatenate([np.hstack([0 * weights, weights]), np.hstack([swap, ~swap]).astype(np.float64)])
        for scorer in scorers:
            scores_a, scores_b = scorer(as_a), scorer(as_b)
            for key in scores_a:
                difference = np.asarray(scores_b[key]) - np.asarray(scores_a[key])
                deltas.setdefault(key, []).append(difference[:size])
                shuffled.setdefault(key, []).append(difference[size:])
    results = {}
    for key, (a, b) in point.items():
        observed = b - a
        extreme = np.abs(np.concatenate(shuffled[key])) >= abs(observed) - 1e-12
        results[key] = {
            "a": a, "b": b, "delta": observed,
            "ci": list(_interval(np.concatenate(deltas[key]), confidence)),
            "p_value": float((extreme.sum() + 1) / (resamples + 1)),
        }
    return results

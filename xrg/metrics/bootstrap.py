"""Bootstrap 95% confidence intervals for corpus NLG scores.

Studies are resampled with replacement and the corpus metric is recomputed on each resample.
Because ``PairStats`` keeps per-pair sufficient statistics, a resample is a vector of pair
multiplicities and all resamples are scored with a few matrix products:
- BLEU-1..4: clipped matches, n-gram counts and lengths are summed with the multiplicities, then
  the exact corpus formula is applied (the same function as the point estimate).
- ROUGE-L: mean of per-pair scores, weighted by multiplicity (exact).
- CIDEr-D: mean of per-pair scores whose document frequencies are those of the full evaluated
  set; a resample does not recount them (recounting would let duplicated studies inflate df).
- METEOR is not bootstrapped: its corpus score is aggregated inside the jar from per-pair
  statistics, and rescoring 1000 resamples through it would cost minutes.
"""

from __future__ import annotations

import numpy as np

from xrg.metrics.nlg.scores import PairStats

BOOTSTRAP_NOTE = (
    "95% percentile intervals over resampled studies; BLEU recomputed from resampled n-gram "
    "counts, ROUGE-L exact, CIDEr-D with the full set's document frequencies, METEOR not bootstrapped"
)


def bootstrap_intervals(
    stats: PairStats, resamples: int = 1000, seed: int = 0, confidence: float = 0.95, chunk: int = 250
) -> dict[str, tuple[float, float]]:
    """(low, high) percentile interval of every corpus score in ``stats.corpus()``."""
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    rng = np.random.default_rng(seed)
    num_pairs = len(stats)
    draws: dict[str, list[np.ndarray]] = {}
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = rng.integers(0, num_pairs, size=(size, num_pairs))
        rows = np.repeat(np.arange(size), num_pairs)
        weights = np.bincount(rows * num_pairs + picks.ravel(), minlength=size * num_pairs).reshape(size, num_pairs)
        for key, values in stats.corpus(weights.astype(np.float64)).items():
            draws.setdefault(key, []).append(np.asarray(values))
    tail = (1 - confidence) / 2 * 100
    return {
        key: tuple(float(value) for value in np.percentile(np.concatenate(chunks), [tail, 100 - tail]))
        for key, chunks in draws.items()
    }

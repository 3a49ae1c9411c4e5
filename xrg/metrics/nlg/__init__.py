"""NLG metrics computed the R2Gen way, equal to pycocoevalcap 1.2 (see docs/metrics.md).

``NLGMetrics().update(generated, references)`` then ``.compute()`` gives ``nlg/bleu_1`` ..
``nlg/bleu_4``, ``nlg/meteor``, ``nlg/rouge_l`` and ``nlg/cider`` for the whole set, gathered
across ranks. ``score_pairs`` is the same computation as a plain function.
"""

from xrg.metrics.nlg.metric import Bleu, CiderD, Meteor, NLGMetrics, PairedTextMetric, RougeL
from xrg.metrics.nlg.scores import NLG_KEYS, NLGScores, PairStats, pair_stats, score_pairs

__all__ = [
    "Bleu",
    "CiderD",
    "Meteor",
    "NLGMetrics",
    "NLG_KEYS",
    "NLGScores",
    "PairStats",
    "PairedTextMetric",
    "RougeL",
    "pair_stats",
    "score_pairs",
]

"""Per-pair sufficient statistics of an evaluated set, and the corpus scores built from them.

Everything a corpus score needs is kept per pair (clipped n-gram matches, lengths, ROUGE-L,
CIDEr-D), so the corpus score, the per-sample scores and every bootstrap resample are cheap sums
over the same arrays. Texts are scored as given: clean them first (``xrg.data.cleaning``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from xrg.metrics.nlg.bleu import bleu_from_counts, clipped_matches, guesses
from xrg.metrics.nlg.cider import cider_d
from xrg.metrics.nlg.ngrams import EncodedPairs, count_ngrams
from xrg.metrics.nlg.rouge import rouge_l

BLEU_ORDERS = 4
BLEU_KEYS = tuple(f"nlg/bleu_{order}" for order in range(1, BLEU_ORDERS + 1))
NLG_KEYS = (*BLEU_KEYS, "nlg/meteor", "nlg/rouge_l", "nlg/cider")


@dataclass(frozen=True)
class PairStats:
    """Arrays over the N pairs of one evaluated set."""

    matches: np.ndarray  # [N, 4] clipped n-gram matches
    guesses: np.ndarray  # [N, 4] hypothesis n-grams (summed per pair: corpus BLEU is not a max over sums)
    hyp_len: np.ndarray  # [N] hypothesis length in str.split() tokens
    ref_len: np.ndarray  # [N] reference length
    rouge_l: np.ndarray  # [N] ROUGE-L F (beta 1.2)
    cider: np.ndarray  # [N] CIDEr-D with document frequencies from this set's references

    def __len__(self) -> int:
        return self.hyp_len.shape[0]

    def corpus(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray | float]:
        """Corpus scores; ``weights`` [B, N] (pair multiplicities) scores B resampled sets at once."""
        if weights is None:
            matches, guessed = self.matches.sum(0), self.guesses.sum(0)
            hyp_len, ref_len = self.hyp_len.sum(), self.ref_len.sum()
            rouge, cider = float(np.mean(self.rouge_l)), float(np.mean(self.cider))
        else:
            matches, guessed = weights @ self.matches, weights @ self.guesses
            hyp_len, ref_len = weights @ self.hyp_len, weights @ self.ref_len
            total = weights.sum(1)
            rouge, cider = weights @ self.rouge_l / total, weights @ self.cider / total
        bleu = bleu_from_counts(matches, guessed, hyp_len, ref_len)
        scores = {key: bleu[..., order] for order, key in enumerate(BLEU_KEYS)}
        if weights is None:
            scores = {key: float(value) for key, value in scores.items()}
        return {**scores, "nlg/rouge_l": rouge, "nlg/cider": cider}

    def per_pair(self) -> dict[str, np.ndarray]:
        """Sentence-level scores (pycocoevalcap's per-image lists)."""
        bleu = bleu_from_counts(self.matches, self.guesses, self.hyp_len, self.ref_len)
        scores = {key: bleu[:, order] for order, key in enumerate(BLEU_KEYS)}
        return {**scores, "nlg/rouge_l": self.rouge_l, "nlg/cider": self.cider}


def pair_stats(generated: list[str], references: list[str]) -> PairStats:
    """Statistics of the pairs (generated[i], references[i]); one reference per study."""
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated reports but {len(references)} references")
    if not generated:
        raise ValueError("no report pairs to score")
    num_pairs = len(generated)
    token_lists = [text.split() for text in generated + references]
    encoded = EncodedPairs.from_tokens(token_lists[:num_pairs], token_lists[num_pairs:])
    # pycocoevalcap splits on any whitespace for BLEU/CIDEr but on " " for ROUGE-L; for cleaned
    # text both give the same tokens, which the join check confirms without splitting twice
    # ("".split(" ") is [""], one empty token, hence the length condition).
    space_split = [
        tokens if tokens and " ".join(tokens) == text else text.split(" ")
        for tokens, text in zip(token_lists, generated + references)
    ]
    same_tokens = all(a is b for a, b in zip(space_split, token_lists))
    rouge_encoded = encoded if same_tokens else EncodedPairs.from_tokens(space_split[:num_pairs], space_split[num_pairs:])
    counts = count_ngrams(encoded, BLEU_ORDERS)
    lengths = encoded.lengths
    hyp_len, ref_len = lengths[:num_pairs], lengths[num_pairs:]
    return PairStats(
        matches=clipped_matches(counts, num_pairs),
        guesses=guesses(hyp_len, BLEU_ORDERS),
        hyp_len=hyp_len,
        ref_len=ref_len,
        rouge_l=rouge_l(rouge_encoded),
        cider=cider_d(counts, hyp_len, ref_len),
    )


METRIC_KEYS = {"bleu": BLEU_KEYS, "meteor": ("nlg/meteor",), "rouge_l": ("nlg/rouge_l",), "cider": ("nlg/cider",)}
METRICS = tuple(METRIC_KEYS)
Tokenization = Literal["none", "ptb"]


@dataclass(frozen=True)
class NLGScores:
    """Corpus scores (``nlg/...`` keys), per-pair scores and the statistics they came from."""

    corpus: dict[str, float]
    per_pair: dict[str, np.ndarray]
    stats: PairStats


def score_pairs(
    generated: list[str],
    references: list[str],
    metrics: Iterable[str] = METRICS,
    tokenize: Tokenization = "none",
) -> NLGScores:
    """Score report pairs the R2Gen way (``tokenize="none"``: texts as given, already cleaned) or
    the COCO way (``"ptb"``: Stanford PTB tokenisation, punctuation removed, for every metric)."""
    metrics = tuple(metrics)
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown NLG metrics {sorted(unknown)}; expected some of {METRICS}")
    if tokenize == "ptb":
        from xrg.metrics.nlg.ptb import ptb_tokenize

        generated, references = ptb_tokenize(generated), ptb_tokenize(references)
    elif tokenize != "none":
        raise ValueError(f"tokenize must be 'none' or 'ptb', got {tokenize!r}")
    stats = pair_stats(generated, references)
    wanted = {key for metric in metrics for key in METRIC_KEYS[metric]}
    corpus = {key: value for key, value in stats.corpus().items() if key in wanted}
    per_pair = {key: value for key, value in stats.per_pair().items() if key in wanted}
    if "meteor" in metrics:
        from xrg.metrics.nlg.meteor import meteor_process

        corpus["nlg/meteor"], per_pair["nlg/meteor"] = meteor_process().score(generated, references)
    order = [key for key in NLG_KEYS if key in corpus]
    return NLGScores({key: corpus[key] for key in order}, {key: per_pair[key] for key in order}, stats)

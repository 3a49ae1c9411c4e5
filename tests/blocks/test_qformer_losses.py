"""The Q-Former's ITC, ITM and ITG losses against values worked out by hand on tiny tensors.

The shared transformer (`_run`) is replaced by a script that returns chosen query and text
outputs, the projections are identities and the heads fixed, so each loss is a short formula of
numbers written in this file. What the script returns for the ITM pairs depends on which image
and which text were paired, so the hardest-negative choice is checked too.
"""

from __future__ import annotations

import math

import pytest
import torch

from xrg.blocks.aligners import QFormerAligner
from xrg.blocks.encoders import Features
from xrg.data.tokenizers import WordTokenizer
from xrg.tasks import QFormerAlignment

TINY_BERT = {"hidden_size": 2, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4}
TEMPERATURE = 0.5
A, B = 4, 5  # the ids of the words "a" and "b" (after the 4 special tokens)


def aligner() -> QFormerAligner:
    q = QFormerAligner(config=TINY_BERT, tokenizer=WordTokenizer(1, words=["a", "b", "c"]), num_queries=2,
                       embed_dim=2, vision_dim=2)
    with torch.no_grad():
        for projection in (q.vision_proj, q.text_proj):
            projection.weight.copy_(torch.eye(2))
            projection.bias.zero_()
        q.temperature.fill_(TEMPERATURE)
    return q


class Script:
    """Stands in for `QFormerAligner._run`: image-only calls return the image tokens as the query
    outputs; text-only calls a fixed vector per first word; paired calls add the text's vector to
    the queries (recording the pairs); causal calls return `causal_text`."""

    def __init__(self, text_vectors: dict[int, list[float]], causal_text: torch.Tensor | None = None) -> None:
        self.text_vectors, self.causal_text, self.pairs = text_vectors, causal_text, []

    def text(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.text_vectors[int(i)] for i in ids[:, 1]])

    def __call__(self, image, text_ids, text_mask, mode):
        if mode == "causal":
            return image.tokens, self.causal_text if self.causal_text is not None else torch.zeros(*text_ids.shape, 2)
        if text_ids is None:
            return image.tokens, None
        if image is None:
            return None, self.text(text_ids).unsqueeze(1).expand(-1, text_ids.shape[1], -1)
        self.pairs = list(zip(image.pooled[:, 0].long().tolist(), text_ids[:, 1].tolist()))
        return image.tokens + self.text(text_ids).unsqueeze(1), None


def images(queries: list[list[list[float]]]) -> Features:
    """Query outputs per image; `pooled[:, 0]` carries the image's index, for the pair record."""
    tokens = torch.tensor(queries)
    return Features(tokens, torch.arange(len(queries)).float().unsqueeze(1).expand(-1, 2).contiguous())


def test_itc_is_the_symmetric_cross_entropy_of_the_best_query_over_temperature(monkeypatch):
    q = aligner()
    # image 0's queries: (1, 0) and (0, -1); image 1's: (0, 1) twice. Texts "a" -> (1, 0), "b" -> (1, 1).
    monkeypatch.setattr(q, "_run", Script({A: [1.0, 0.0], B: [1.0, 1.0]}))
    losses = q.alignment_losses(images([[[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [0.0, 1.0]]]), ["a", "b"])
    # cosines with the best query: image 0 vs a 1, vs b 1/sqrt2; image 1 vs a 0, vs b 1/sqrt2; / 0.5
    s = math.sqrt(2)  # 1/sqrt2 / 0.5
    sim = [[2.0, s], [0.0, s]]
    rows = math.log(1 + math.exp(sim[0][1] - sim[0][0])) + math.log(1 + math.exp(sim[1][0] - sim[1][1]))
    columns = math.log(1 + math.exp(sim[1][0] - sim[0][0])) + math.log(1 + math.exp(sim[0][1] - sim[1][1]))
    assert losses["itc"].item() == pytest.approx((rows / 2 + columns / 2) / 2, abs=1e-6)


def test_itm_pairs_each_image_and_text_with_its_hardest_negative(monkeypatch):
    q = aligner()
    with torch.no_grad():  # match logit = 2 * (sum of the mean query output), no-match logit 0
        q.itm_head.weight.copy_(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))
        q.itm_head.bias.zero_()
    script = Script({A: [1.0, 0.0], B: [0.0, 1.0], A + 2: [0.6, 0.8]})  # texts "a", "b", "c"
    monkeypatch.setattr(q, "_run", script)
    queries = [[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]], [[0.8, 0.6], [0.8, 0.6]]]
    losses = q.alignment_losses(images(queries), ["a", "b", "c"])
    # cosine(image i, text j): [[1, 0, .6], [0, 1, .8], [.8, .6, .96]]. Hardest wrong text per image:
    # 0 -> c, 1 -> c, 2 -> a; hardest wrong image per text: a -> 2, b -> 2, c -> 1.
    text_of = {A: 0, B: 1, A + 2: 2}
    pairs = [(image, text_of[word]) for image, word in script.pairs]
    assert pairs == [(0, 0), (1, 1), (2, 2), (0, 2), (1, 2), (2, 0), (2, 0), (2, 1), (1, 2)]
    # match logit of a pair = 2 * sum(image's query + text's vector) = 2 * (sum_q + sum_t)
    total = {0: 1.0, 1: 1.0, 2: 1.4}  # image query sums and text vector sums (both the same here)
    expected = 0.0
    for n, (image, text) in enumerate(pairs):
        logit = 2 * (total[image] + total[text])
        expected += math.log(1 + math.exp(-logit)) if n < 3 else math.log(1 + math.exp(logit))
    assert losses["itm"].item() == pytest.approx(expected / len(pairs), abs=1e-5)


def test_itg_predicts_each_next_real_token_through_the_tied_embeddings(monkeypatch):
    q = aligner()
    vocab = q.tokenizer.vocab_size  # 7
    with torch.no_grad():
        q.bert.embeddings.word_embeddings.weight.copy_(torch.tensor([[0.0, 0.0]] * vocab))
        q.bert.embeddings.word_embeddings.weight[A] = torch.tensor([1.0, 0.0])
        q.bert.embeddings.word_embeddings.weight[B] = torch.tensor([0.0, 1.0])
        q.itg.bias.zero_()
        q.itg.bias[2] = math.log(2.0)  # EOS
    # "a" = BOS a EOS; "b a" = BOS b a EOS. Outputs at positions 0..3 predict the next token.
    text = torch.tensor([[[3.0, 0.0], [0.0, 0.0], [9.0, 9.0], [9.0, 9.0]],
                         [[0.0, 3.0], [3.0, 0.0], [0.0, 0.0], [9.0, 9.0]]])
    monkeypatch.setattr(q, "_run", Script({A: [1.0, 0.0], B: [0.0, 1.0]}, causal_text=text))
    losses = q.alignment_losses(images([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]]), ["a", "b a"])

    def nll(logit_of_target: float, logits: dict[int, float]) -> float:
        """-log p(target) over the 7 tokens, every token not in `logits` at 0."""
        z = sum(math.exp(v) for v in logits.values()) + (vocab - len(logits))
        return -(logit_of_target - math.log(z))

    e3, eos = {A: 3.0, B: 0.0, 2: math.log(2)}, {A: 0.0, B: 0.0, 2: math.log(2)}
    targets = [nll(3.0, e3),  # study 0: (3, 0) -> "a"
               nll(math.log(2), eos),  # (0, 0) -> EOS; positions after EOS are padding, ignored
               nll(3.0, {A: 0.0, B: 3.0, 2: math.log(2)}),  # study 1: (0, 3) -> "b"
               nll(3.0, e3),  # (3, 0) -> "a"
               nll(math.log(2), eos)]  # (0, 0) -> EOS
    assert losses["itg"].item() == pytest.approx(sum(targets) / len(targets), abs=1e-6)


def test_the_stage_objective_is_the_weighted_sum_of_the_three(monkeypatch):
    from xrg.blocks.encoders import TimmImageEncoder

    torch.manual_seed(0)
    task = QFormerAlignment(TimmImageEncoder("test_resnet"), aligner(), loss_weights={"itm": 0.5, "itg": 2.0})
    parts = {"itc": torch.tensor(1.5), "itm": torch.tensor(0.25), "itg": torch.tensor(3.0)}
    monkeypatch.setattr(task.aligner, "alignment_losses", lambda features, texts: parts)
    logged = {}
    monkeypatch.setattr(task, "log", lambda name, value, **kw: logged.__setitem__(name, float(value)))
    monkeypatch.setattr(task, "log_dict", lambda values, **kw: logged.update({k: float(v) for k, v in values.items()}))
    batch = {"ids": ["x", "y"], "images": torch.rand(2, 1, 3, 32, 32), "reports": ["a", "b"]}
    assert task.training_step(batch, 0).item() == pytest.approx(1.5 + 0.125 + 6.0)
    assert logged == {"train/itc": 1.5, "train/itm": 0.25, "train/itg": 3.0, "train/loss": pytest.approx(7.625)}

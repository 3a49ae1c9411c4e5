"""BLIP-2's Q-Former: learned queries read the image through cross-attention inside a BERT.

The BERT (any BERT-like model by hub name or local path, e.g. bert-base-uncased as in RaDialog,
or the offline MiniLM; or a tiny `config` with random weights) is shared by the queries and the
report text. The queries attend to image tokens through new cross-attention layers inserted
after every `cross_attention_every`-th self-attention layer. As an aligner it returns the
`num_queries` query outputs; `alignment_losses` gives BLIP-2's stage-1 objectives:

- ITC: image-text contrastive, similarity = max over queries of cosine(query, text [CLS]);
- ITM: image-text matching on [queries; text] with bidirectional attention, hardest in-batch
  negatives (by ITC similarity), a 2-way head on the mean query output;
- ITG: image-grounded generation, text predicts its next token seeing all queries and its past
  (queries never see text); output layer tied to the word embeddings.

Simplification against BLIP-2: queries and text share one feed-forward per layer (BLIP-2 keeps
a separate query FFN initialised as a copy).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.base import Features, VocabularyOwner
from xrg.data.tokenizers import HFTokenizer, Tokenizer


class CrossAttention(nn.Module):
    """Pre-residual cross-attention from queries to image tokens, BERT-style post-norm."""

    def __init__(self, dim: int, vision_dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, kdim=vision_dim, vdim=vision_dim, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, image: torch.Tensor, image_mask: torch.Tensor | None) -> torch.Tensor:
        padding = None if image_mask is None else ~image_mask
        attended, _ = self.attention(queries, image, image, key_padding_mask=padding, need_weights=False)
        return self.norm(queries + attended)


class QFormerAligner(VocabularyOwner, Aligner):
    def __init__(
        self,
        text_model: str | None = None,
        config: dict[str, Any] | None = None,
        tokenizer: Tokenizer | None = None,
        num_queries: int = 32,
        cross_attention_every: int = 2,
        embed_dim: int = 256,
        max_text_length: int = 128,
        vision_dim: int | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, BertConfig

        if (text_model is None) == (config is None):
            raise ValueError("QFormerAligner needs exactly one of `text_model` (name or path) or `config`")
        self.text_model = text_model
        if text_model is not None:
            self.bert_config = AutoConfig.from_pretrained(text_model)
            tokenizer = tokenizer if tokenizer is not None else HFTokenizer(text_model)
        else:
            if tokenizer is None:
                raise ValueError("a `config` Q-Former needs a tokenizer, e.g. BPETokenizer (fitted in prepare())")
            self.bert_config = BertConfig(**config)
        self.tokenizer = tokenizer
        dim, heads = self.bert_config.hidden_size, self.bert_config.num_attention_heads
        self.out_dim, self.max_text_length = dim, max_text_length
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * self.bert_config.initializer_range)
        self.cross_attention_every = cross_attention_every
        self.cross_layers: nn.ModuleDict | None = None  # sized by the image encoder's width: bind_input
        # Heads of the alignment objectives (unused once the Q-Former serves as an aligner).
        self.vision_proj = nn.Linear(dim, embed_dim)
        self.text_proj = nn.Linear(dim, embed_dim)
        self.itm_head = nn.Linear(dim, 2)
        self.temperature = nn.Parameter(torch.tensor(0.07))
        self.bert: nn.Module | None = None
        self.itg: nn.ParameterDict | None = None  # output bias of ITG (its weight is the word embeddings)
        if self.tokenizer.is_fitted:
            self._build_vocab_layers()
        if vision_dim is not None:
            self.bind_input(vision_dim)

    def _build_input_layers(self, dim: int) -> None:
        config = self.bert_config
        self.cross_layers = nn.ModuleDict({
            str(i): CrossAttention(config.hidden_size, dim, config.num_attention_heads, config.attention_probs_dropout_prob)
            for i in range(0, config.num_hidden_layers, self.cross_attention_every)
        })

    def _build_vocab_layers(self) -> None:
        """The vocabulary-sized part: a pretrained BERT, or a random one sized by the tokenizer."""
        from transformers import AutoModel, BertModel

        if self.text_model is not None:
            self.bert = AutoModel.from_pretrained(self.text_model, add_pooling_layer=False)
        else:
            self.bert_config.vocab_size = self.tokenizer.vocab_size
            self.bert = BertModel(self.bert_config, add_pooling_layer=False)
        # A child module, not a parameter of this one: children load after `set_extra_state` built them.
        self.itg = nn.ParameterDict({"bias": nn.Parameter(torch.zeros(self.bert.config.vocab_size))})

    @property
    def is_built(self) -> bool:
        return self.bert is not None

    # --- the shared transformer ------------------------------------------------------------
    def _run(
        self,
        image: Features | None,
        text_ids: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        mode: str,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Queries (if `image`) and text (if `text_ids`) through the BERT in one sequence.

        mode "bidirectional": everything sees everything (ITM, and each side alone);
        mode "causal": queries see queries; text sees queries and earlier text (ITG).
        """
        if self.bert is None:
            raise RuntimeError("QFormerAligner's BERT is not built: call prepare(train_reports) first")
        parts, batch = [], (image.tokens.shape[0] if image is not None else text_ids.shape[0])
        n_query = 0
        if image is not None:
            n_query = self.queries.shape[1]
            parts.append(self.bert.embeddings.LayerNorm(self.queries.expand(batch, -1, -1)))
        if text_ids is not None:
            parts.append(self.bert.embeddings(input_ids=text_ids))
        hidden = self.bert.embeddings.dropout(torch.cat(parts, dim=1))
        length = hidden.shape[1]
        keys_real = torch.ones(batch, length, dtype=torch.bool, device=hidden.device)
        if text_mask is not None:
            keys_real[:, n_query:] = text_mask.bool()
        allowed = keys_real[:, None, :].expand(batch, length, length).clone()
        if mode == "causal":
            n_text = length - n_query
            allowed[:, :n_query, n_query:] = False
            causal = torch.ones(n_text, n_text, dtype=torch.bool, device=hidden.device).tril()
            allowed[:, n_query:, n_query:] &= causal
        additive = torch.zeros(batch, 1, length, length, dtype=hidden.dtype, device=hidden.device)
        additive.masked_fill_(~allowed[:, None], torch.finfo(hidden.dtype).min)

        for i, layer in enumerate(self.bert.encoder.layer):
            attended = layer.attention(hidden, attention_mask=additive)[0]
            if image is not None and str(i) in self.cross_layers:
                queries = self.cross_layers[str(i)](attended[:, :n_query], image.tokens, image.mask)
                attended = torch.cat([queries, attended[:, n_query:]], dim=1)
            hidden = layer.output(layer.intermediate(attended), attended)
        query_out = hidden[:, :n_query] if image is not None else None
        text_out = hidden[:, n_query:] if text_ids is not None else None
        return query_out, text_out

    def objective_only_parameters(self) -> list[nn.Parameter]:
        """The ITC/ITM/ITG heads and the text embeddings: queries skip the embeddings but their LayerNorm."""
        heads = [self.vision_proj, self.text_proj, self.itm_head, self.itg]
        embeddings = self.bert.embeddings if self.bert is not None else None
        text = [getattr(embeddings, name) for name in ("word_embeddings", "position_embeddings", "token_type_embeddings")
                if embeddings is not None and hasattr(embeddings, name)]
        return [self.temperature] + [p for module in heads + text if module is not None for p in module.parameters()]

    def forward(self, features: Features) -> Features:
        queries, _ = self._run(features, None, None, "bidirectional")
        return Features(queries, queries.mean(1), None)

    # --- alignment objectives --------------------------------------------------------------
    def _tokenize(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tokenizer.batch_encode(texts, self.max_text_length).to(device)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for row, text in enumerate(texts):  # real tokens: BOS + text + EOS, before the padding
            mask[row, : min(len(self.tokenizer.encode(text)) + 2, ids.shape[1])] = True
        return ids, mask

    def alignment_losses(self, image: Features, texts: list[str]) -> dict[str, torch.Tensor]:
        """{"itc", "itm", "itg"} for a batch of images and their reports."""
        ids, mask = self._tokenize(texts, image.tokens.device)
        batch = ids.shape[0]
        targets = torch.arange(batch, device=ids.device)

        query_out, _ = self._run(image, None, None, "bidirectional")
        _, text_out = self._run(None, ids, mask, "bidirectional")
        image_embed = F.normalize(self.vision_proj(query_out), dim=-1)  # [B, Q, E]
        text_embed = F.normalize(self.text_proj(text_out[:, 0]), dim=-1)  # [B, E]
        # sim[i, j]: image i vs text j, the best-matching query
        sim = torch.einsum("iqe,je->ijq", image_embed, text_embed).amax(-1) / self.temperature.clamp(0.001, 0.5)
        itc = (F.cross_entropy(sim, targets) + F.cross_entropy(sim.t(), targets)) / 2

        # ITM: positives plus, per image, its hardest wrong text and, per text, its hardest wrong image.
        with torch.no_grad():
            blocked = sim.detach().clone()
            blocked.fill_diagonal_(float("-inf"))
            hard_text = blocked.argmax(1) if batch > 1 else targets
            hard_image = blocked.argmax(0) if batch > 1 else targets
        image_rows = torch.cat([targets, targets, hard_image])
        text_rows = torch.cat([targets, hard_text, targets])
        pair_image = Features(image.tokens[image_rows], image.pooled[image_rows], None if image.mask is None else image.mask[image_rows])
        pair_query, _ = self._run(pair_image, ids[text_rows], mask[text_rows], "bidirectional")
        itm_logits = self.itm_head(pair_query.mean(1))
        itm_labels = torch.cat([torch.ones(batch), torch.zeros(2 * batch)]).long().to(ids.device)
        if batch == 1:  # no negative exists in a batch of one
            itm_logits, itm_labels = itm_logits[:1], itm_labels[:1]
        itm = F.cross_entropy(itm_logits, itm_labels)

        _, text_out = self._run(image, ids, mask, "causal")
        word_embeddings = self.bert.embeddings.word_embeddings.weight
        logits = text_out[:, :-1] @ word_embeddings.t() + self.itg.bias
        labels = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
        itg = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return {"itc": itc, "itm": itm, "itg": itg}

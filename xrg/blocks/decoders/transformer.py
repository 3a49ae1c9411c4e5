"""R2Gen encoder-decoder transformer over visual tokens, with KV-cached greedy and beam search."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xrg.blocks.decoders.base import Decoder
from xrg.blocks.decoders.relational_memory import ConditionalLayerNorm, RelationalMemory
from xrg.blocks.encoders.base import Features
from xrg.data.tokenizers import Tokenizer, WordTokenizer

KVCache = tuple[torch.Tensor, torch.Tensor]


@dataclass
class DecodingCache:
    """What generation carries from one step to the next, one row per beam."""

    layers: list[KVCache]  # each decoder layer's self-attention keys/values so far
    slots: torch.Tensor | None = None  # relational memory after the last token, when the decoder has one

    def select(self, rows: torch.Tensor) -> DecodingCache:
        """The cache of the beams in `rows` (beam search reorders and duplicates beams)."""
        return DecodingCache([(k[rows], v[rows]) for k, v in self.layers],
                             None if self.slots is None else self.slots[rows])


def ban_repeated_ngrams(log_probs: torch.Tensor, tokens: torch.Tensor, n: int) -> None:
    """Set to -inf, in place, each row's next tokens that would repeat an n-gram already in `tokens`
    `[R, T]`: wherever the last n-1 tokens occurred before, the token that followed them then."""
    if tokens.shape[1] < n:
        return
    windows = tokens.unfold(1, n, 1)  # [R, T-n+1, n]: every n-gram written so far
    prefix = tokens[:, tokens.shape[1] - n + 1:]  # [R, n-1]: what the next token would complete
    seen = (windows[:, :, :-1] == prefix[:, None, :]).all(-1)  # [R, T-n+1]
    rows, at = seen.nonzero(as_tuple=True)
    log_probs[rows, windows[rows, at, -1]] = -math.inf


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def sincos_2d_positions(height: int, width: int, dim: int) -> torch.Tensor:
    """`[height*width, dim]`: the first half of the channels encode the column, the second the row."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos positions need a width divisible by 4, got {dim}")
    columns = sinusoidal_positions(width, dim // 2)  # [w, dim/2]
    rows = sinusoidal_positions(height, dim // 2)  # [h, dim/2]
    return torch.cat([columns.repeat(height, 1), rows.repeat_interleave(width, dim=0)], dim=1)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # [B, T, D] -> [B, H, T, D/H]


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(2)


class CachedDecoderLayer(nn.Module):
    """Pre-norm decoder layer whose self-attention keys/values can be cached across steps.

    With `condition_dim` its three norms are memory-driven conditional layer norms (R2Gen's MCLN),
    and every call passes the per-position condition.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, condition_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.self_qkv = nn.Linear(dim, 3 * dim)
        self.self_out = nn.Linear(dim, dim)
        self.cross_q = nn.Linear(dim, dim)
        self.cross_kv = nn.Linear(dim, 2 * dim)
        self.cross_out = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norms = nn.ModuleList(
            nn.LayerNorm(dim) if condition_dim is None else ConditionalLayerNorm(dim, condition_dim) for _ in range(3)
        )
        self.dropout = nn.Dropout(dropout)

    def memory_kv(self, memory: torch.Tensor) -> KVCache:
        """Cross-attention keys/values: computed once per study, reused at every step."""
        k, v = self.cross_kv(memory).chunk(2, dim=-1)
        return _split_heads(k, self.heads), _split_heads(v, self.heads)

    def forward(
        self,
        x: torch.Tensor,
        memory_kv: KVCache,
        memory_mask: torch.Tensor | None,
        cache: KVCache | None = None,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        def norm(i: int, h: torch.Tensor) -> torch.Tensor:
            return self.norms[i](h) if condition is None else self.norms[i](h, condition)

        p = self.dropout.p if self.training else 0.0
        q, k, v = (_split_heads(t, self.heads) for t in self.self_qkv(norm(0, x)).chunk(3, dim=-1))
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        # Without a cache the whole sequence is seen at once and must be causal; with a cache the
        # single new query may attend to everything before it.
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=cache is None and q.shape[2] > 1)
        x = x + self.dropout(self.self_out(_merge_heads(attended)))
        q = _split_heads(self.cross_q(norm(1, x)), self.heads)
        attended = F.scaled_dot_product_attention(q, *memory_kv, attn_mask=memory_mask, dropout_p=p)
        x = x + self.dropout(self.cross_out(_merge_heads(attended)))
        x = x + self.dropout(self.ffn(norm(2, x)))
        return x, (k, v)


class TransformerDecoder(Decoder):
    """Visual tokens -> transformer encoder -> causal transformer decoder -> words.

    R2Gen's model (Chen et al., EMNLP 2020) when `rm_slots > 0` (R2Gen: 3 slots, `rm_heads` 8, by
    default the decoder's heads): a relational memory (RM) reads the embedded tokens one by one and
    its state conditions the decoder layers' norms (MCLN). With `rm_slots: 0`, the default, a plain
    transformer decoder. Generation caches self-attention keys/values, the memory's cross-attention
    keys/values and the relational memory's state, so each step costs one token's work.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | None = None,
        dim: int = 512,
        heads: int = 8,
        ffn_dim: int = 2048,
        encoder_layers: int = 3,
        decoder_layers: int = 3,
        dropout: float = 0.1,
        max_length: int = 60,
        num_beams: int = 3,
        length_penalty: float = 0.0,
        no_repeat_ngram_size: int = 0,
        memory_dim: int | None = None,
        max_positions: int = 512,
        memory_grid: tuple[int, int] | None = None,
        rm_slots: int = 0,
        rm_heads: int | None = None,
        memory_dropout: float | None = None,
    ) -> None:
        super().__init__(tokenizer if tokenizer is not None else WordTokenizer(threshold=3))
        self.dim, self.heads, self.max_length = dim, heads, max_length
        self.num_beams, self.length_penalty = num_beams, length_penalty
        if no_repeat_ngram_size < 0 or no_repeat_ngram_size == 1:
            raise ValueError(f"no_repeat_ngram_size is 0 (off) or an n-gram length >= 2, got {no_repeat_ngram_size}")
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.memory_proj: nn.Module | None = None
        # R2Gen drops the projected visual features at 0.5 (its `drop_prob_lm`), the rest at 0.1.
        self.memory_dropout = dropout if memory_dropout is None else memory_dropout
        layer = nn.TransformerEncoderLayer(dim, heads, ffn_dim, dropout, batch_first=True, norm_first=True)
        self.visual_encoder = nn.TransformerEncoder(layer, encoder_layers, enable_nested_tensor=False)
        self.visual_norm = nn.LayerNorm(dim)
        # R2Gen's relational memory is as wide as the model (rm_d_model = d_model in its released runs).
        self.relational_memory: RelationalMemory | None = None
        if rm_slots < 0:
            raise ValueError(f"rm_slots must be 0 (no relational memory) or more, got {rm_slots}")
        if rm_slots:
            self.relational_memory = RelationalMemory(dim, rm_slots, rm_heads or heads, dropout)
        condition_dim = None if self.relational_memory is None else self.relational_memory.state_dim
        self.layers = nn.ModuleList(
            CachedDecoderLayer(dim, heads, ffn_dim, dropout, condition_dim) for _ in range(decoder_layers)
        )
        self.final_norm = nn.LayerNorm(dim)
        self.embed_dropout = nn.Dropout(dropout)
        self.register_buffer("positions", sinusoidal_positions(max_positions, dim), persistent=False)
        # Memory laid out as views of an (h, w) grid (UniCrossAdapter): fixed 2-D positions per view
        # and a learned CLS token in front. Without a grid the memory is an unordered set, as in R2Gen.
        self.memory_grid = tuple(memory_grid) if memory_grid is not None else None
        self.memory_cls: nn.Parameter | None = None
        if self.memory_grid is not None:
            self.register_buffer("memory_positions", sincos_2d_positions(*self.memory_grid, dim), persistent=False)
            self.memory_cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.embed: nn.Embedding | None = None
        self.head: nn.Linear | None = None
        self._finish_init(memory_dim)

    # --- building --------------------------------------------------------------------------
    @property
    def is_built(self) -> bool:
        return self.head is not None

    def _build_memory_layers(self, memory_dim: int) -> None:
        self.memory_proj = nn.Sequential(nn.Linear(memory_dim, self.dim), nn.ReLU(), nn.Dropout(self.memory_dropout))

    def _build_vocab_layers(self) -> None:
        self.embed = nn.Embedding(self.tokenizer.vocab_size, self.dim, padding_idx=self.tokenizer.pad_id)
        self.head = nn.Linear(self.dim, self.tokenizer.vocab_size)

    # --- forward pieces --------------------------------------------------------------------
    def encode_memory(self, memory: Features) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.memory_proj is None:
            raise RuntimeError("decoder has no memory projection: call bind_memory(visual_dim) first")
        x, mask = self.memory_proj(memory.tokens), memory.mask
        if self.memory_grid is not None:
            x, mask = self._add_grid_positions(x, mask, memory.appended)
        padding = None if mask is None else ~mask
        encoded = self.visual_encoder(x, src_key_padding_mask=padding)
        attn_mask = None if mask is None else mask[:, None, None, :]
        return self.visual_norm(encoded), attn_mask

    def _add_grid_positions(self, x: torch.Tensor, mask: torch.Tensor | None,
                            appended: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        # The views' tokens get the grid's positions; tokens a guide appended after them (findings
        # tokens) have no place on the grid and keep what their guide gave them.
        cells, gridded = self.memory_positions.shape[0], x.shape[1] - appended
        if gridded % cells:
            raise ValueError(f"memory has {gridded} view tokens, not a whole number of {self.memory_grid} grids")
        positions = self.memory_positions.repeat(gridded // cells, 1)  # the same positions in every view
        x = torch.cat([x[:, :gridded] + positions, x[:, gridded:]], dim=1)
        x = torch.cat([self.memory_cls.expand(x.shape[0], -1, -1), x], dim=1)
        if mask is not None:
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        return x, mask

    def _embed(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        x = self.embed(ids) * math.sqrt(self.dim) + self.positions[start : start + ids.shape[1]]
        return self.embed_dropout(x)

    def _decode(
        self,
        ids: torch.Tensor,
        memory_kv: list[KVCache],
        attn_mask: torch.Tensor | None,
        cache: DecodingCache | None = None,
    ) -> tuple[torch.Tensor, DecodingCache]:
        """Logits `[B, T, V]` of `ids` following the tokens in `cache` (none: `ids` start the report),
        and the cache extended by `ids`. Teacher forcing and every generation step run through here."""
        start = 0 if cache is None else cache.layers[0][0].shape[2]
        x = self._embed(ids, start)
        slots, condition = None, None
        if self.relational_memory is not None:
            previous = self.relational_memory.initial(x.shape[0], x.device, x.dtype) if cache is None else cache.slots
            states = self.relational_memory(x, previous)  # [B, T, S, d]: the state after each token
            slots, condition = states[:, -1], states.flatten(2)
        layers = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, memory_kv[i], attn_mask, None if cache is None else cache.layers[i], condition)
            layers.append(kv)
        return self.head(self.final_norm(x)), DecodingCache(layers, slots)

    def logits(self, memory: Features, ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits `[B, T, V]`; position t sees ids[:, :t+1] only (causal)."""
        encoded, attn_mask = self.encode_memory(memory)
        return self._decode(ids, [layer.memory_kv(encoded) for layer in self.layers], attn_mask)[0]

    def loss(self, memory: Features, targets: list[str], prompts: list[str] | None = None) -> torch.Tensor:
        if prompts is not None:
            raise ValueError("TransformerDecoder takes no text prompt; use CausalLMDecoder for prompts")
        ids = self.tokenizer.batch_encode(targets, self.max_length + 2).to(memory.tokens.device)
        logits = self.logits(memory, ids[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), ignore_index=self.tokenizer.pad_id)

    # --- generation ------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, memory: Features, prompts: list[str] | None = None, **overrides: Any) -> list[str]:
        ids = self.generate_ids(
            memory,
            num_beams=overrides.get("num_beams", self.num_beams),
            max_length=overrides.get("max_length", self.max_length),
            length_penalty=overrides.get("length_penalty", self.length_penalty),
            no_repeat_ngram_size=overrides.get("no_repeat_ngram_size", self.no_repeat_ngram_size),
        )
        return self.tokenizer.batch_decode(ids)

    @torch.no_grad()
    def generate_ids(
        self,
        memory: Features,
        num_beams: int = 1,
        max_length: int = 60,
        length_penalty: float = 0.0,
        no_repeat_ngram_size: int = 0,
    ) -> torch.Tensor:
        """Beam search (greedy when `num_beams == 1`) -> best ids `[B, <=max_length]` (no BOS).
        `no_repeat_ngram_size` n > 0: no beam writes an n-gram it has written before (R2Gen's
        `block_trigrams` for n = 3, transformers' `no_repeat_ngram_size`)."""
        tok = self.tokenizer
        encoded, attn_mask = self.encode_memory(memory)
        batch, k = encoded.shape[0], num_beams
        encoded = encoded.repeat_interleave(k, dim=0)
        if attn_mask is not None:
            attn_mask = attn_mask.repeat_interleave(k, dim=0)
        memory_kv = [layer.memory_kv(encoded) for layer in self.layers]
        cache: DecodingCache | None = None

        device = encoded.device
        tokens = torch.full((batch * k, 1), tok.bos_id, dtype=torch.long, device=device)
        scores = torch.zeros(batch, k, device=device)
        scores[:, 1:] = -math.inf  # all beams start identical: expand only the first
        finished = torch.zeros(batch * k, dtype=torch.bool, device=device)
        lengths = torch.zeros(batch * k, device=device)
        offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)

        for _ in range(max_length):
            logits, cache = self._decode(tokens[:, -1:], memory_kv, attn_mask, cache)
            log_probs = logits[:, -1].float().log_softmax(-1)
            if no_repeat_ngram_size:
                ban_repeated_ngrams(log_probs, tokens, no_repeat_ngram_size)
            # A finished beam may only continue with padding, at no cost, so it keeps its score.
            log_probs[finished] = -math.inf
            log_probs[finished, tok.pad_id] = 0.0
            vocab = log_probs.shape[-1]
            candidates = (scores.view(-1, 1) + log_probs).view(batch, k * vocab)
            scores, flat_index = candidates.topk(k, dim=-1)
            source = (offsets + flat_index // vocab).view(-1)
            next_token = (flat_index % vocab).view(-1, 1)
            tokens = torch.cat([tokens[source], next_token], dim=1)
            cache = cache.select(source)
            lengths = lengths[source] + (~finished[source]).float()
            finished = finished[source] | (next_token.squeeze(1) == tok.eos_id)
            if finished.all():
                break

        normalised = scores / lengths.view(batch, k).clamp_min(1) ** length_penalty
        best = (offsets.squeeze(1) + normalised.argmax(-1))
        return tokens[best, 1:]

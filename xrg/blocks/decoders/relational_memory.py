"""R2Gen's relational memory (RM) and memory-driven conditional layer norm (MCLN) (Chen et al., EMNLP 2020).

RM is a recurrent state of a few slot vectors that reads one token embedding per step; MCLN is a
layer norm whose scale and shift are moved by the flattened state. `TransformerDecoder` uses them
when given `relational_memory`; the state after the last token is part of its decoding cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RelationalMemory(nn.Module):
    """`slots` vectors of width `dim`, updated per token by attention over [slots; token] and a gated write."""

    def __init__(self, dim: int, slots: int = 3, heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"relational memory width {dim} is not divisible by its {heads} heads")
        self.dim, self.slots, self.heads, self.dropout = dim, slots, heads, dropout
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.attn_out = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        # Input and forget gates read the token (once, shared by every slot) and the squashed old slots.
        self.gate_from_token = nn.Linear(dim, 2 * dim)
        self.gate_from_slots = nn.Linear(dim, 2 * dim)

    @property
    def state_dim(self) -> int:
        """Width of the flattened state that conditions MCLN."""
        return self.slots * self.dim

    def initial(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """`[batch, slots, dim]`: slot i is the i-th unit vector, so the slots start apart (R2Gen's start)."""
        start = torch.eye(self.slots, self.dim, device=device, dtype=dtype)
        return start.expand(batch, -1, -1)

    def step(self, token: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """One token `[B, dim]` read into `slots` `[B, S, dim]` -> the next slots."""
        token = token.unsqueeze(1)
        seen = torch.cat([slots, token], dim=1)
        q = self.query(slots).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.key_value(seen).chunk(2, dim=-1))
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        candidate = slots + self.attn_out(attended.transpose(1, 2).flatten(2))
        candidate = candidate + self.mlp(candidate)
        gates = self.gate_from_token(token) + self.gate_from_slots(torch.tanh(slots))
        write, keep = torch.sigmoid(gates).chunk(2, dim=-1)
        return write * torch.tanh(candidate) + keep * slots

    def forward(self, tokens: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Read tokens `[B, T, dim]` in order from `slots` -> the state after each token `[B, T, S, dim]`."""
        states = []
        for t in range(tokens.shape[1]):
            slots = self.step(tokens[:, t], slots)
            states.append(slots)
        return torch.stack(states, dim=1)


class ConditionalLayerNorm(nn.Module):
    """LayerNorm whose gain and bias are shifted by MLPs of a conditioning vector (MCLN).

    Keeps `weight`/`bias` names of `nn.LayerNorm` for the unconditioned part.
    """

    def __init__(self, dim: int, condition_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.delta_weight = nn.Sequential(nn.Linear(condition_dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.delta_bias = nn.Sequential(nn.Linear(condition_dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        # R2Gen's released initialisation of these MLPs: Xavier weights, biases 0.1.
        for module in (*self.delta_weight, *self.delta_bias):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.constant_(module.bias, 0.1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """`x [B, T, dim]` normalised, then scaled and shifted per position by `condition [B, T, condition_dim]`."""
        normalised = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        gain = self.weight + self.delta_weight(condition)
        shift = self.bias + self.delta_bias(condition)
        return gain * normalised + shift

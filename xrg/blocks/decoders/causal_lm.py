"""A Hugging Face causal LM as the report decoder: visual vectors spliced into the prompt.

The prompt is text with `<image>` / `<image:K>` placeholders (see `xrg.blocks.decoders.prompt`).
Each placeholder becomes embedding slots that are filled, through `inputs_embeds`, with the
memory tokens after the decoder's memory projection (`bind_memory`). Loss is on the target
(response) tokens only. The LLM's own weights are frozen by default; LoRA adapters (peft) and the
memory projection train.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xrg.blocks.decoders.base import Decoder
from xrg.blocks.decoders.prompt import IMAGE, PLACEHOLDER
from xrg.blocks.decoders.source_weights import KEY as OMITTED, drop_source_weights, fill_source_weights, frozen_base_checksums
from xrg.blocks.encoders.base import Features
from xrg.data.tokenizers import Tokenizer

IGNORE = -100  # label value HF's loss and ours skip


@dataclass
class LoRASettings:
    """peft LoRA on the named linear layers (RaDialog: r 8, alpha 16, dropout 0.05, q/v)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class Sequences:
    """A tokenized batch: ids with slot positions, where each slot takes memory[b, index]."""

    ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    labels: torch.Tensor | None  # [B, T], IGNORE outside the targets
    slot_batch: torch.Tensor  # [S] sample of each slot
    slot_position: torch.Tensor  # [S] position of each slot in the sequence
    slot_memory: torch.Tensor  # [S] which memory token fills it


class CausalLMDecoder(Decoder):
    """Any `AutoModelForCausalLM` by hub name or local path (`model`), or random weights from a
    tiny `config` (e.g. `{model_type: llama, hidden_size: 64, ...}`; the vocabulary size comes
    from the tokenizer, so a BPE fitted in `prepare()` sizes it).

    Tokenizer: `HFTokenizer(model)` by default for a named model; a fitted or to-be-fitted
    `BPETokenizer` for a tiny config. `trust_remote_code` is passed on only when set.
    Generation: greedy (`num_beams=1`), beam search, or sampling (`do_sample`) via HF `generate`
    with the KV cache; any of these can be overridden per call.
    Attention: `attn_implementation="auto"` picks flash-attention 2 where it can run, else SDPA;
    any name transformers knows ("eager", "sdpa", "flash_attention_2") is passed on as given.
    KV cache: `cache_implementation="dynamic"` (grows step by step) or `"static"` (allocated once at
    prompt + `max_new_tokens`, same outputs); `compile` (true, or `transformers.CompileConfig`
    options such as `{mode: max-autotune-no-cudagraphs}`) compiles the decode step over the static
    cache. docs/performance.md says when each pays.

    Checkpoints of a named `model` with a frozen base (LoRA, or `freeze_llm`) leave the unchanged
    base weights out and re-read them from `model` on load, checksum-verified
    (`xrg.blocks.decoders.source_weights`); `save_frozen_base: true` writes them anyway.
    """

    takes_prompts = True

    def __init__(
        self,
        model: str | None = None,
        config: dict[str, Any] | None = None,
        tokenizer: Tokenizer | None = None,
        lora: LoRASettings | None = None,
        freeze_llm: bool = True,
        memory_projection: str = "linear",
        memory_dim: int | None = None,
        dtype: str = "float32",
        gradient_checkpointing: bool = False,
        attn_implementation: str = "auto",
        trust_remote_code: bool = False,
        save_frozen_base: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        max_length: int = 300,
        max_new_tokens: int = 300,
        num_beams: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        cache_implementation: str = "dynamic",
        compile: bool | dict[str, Any] = False,
    ) -> None:
        if (model is None) == (config is None):
            raise ValueError("CausalLMDecoder needs exactly one of `model` (name or path) or `config`")
        if memory_projection not in ("linear", "mlp", "none"):
            raise ValueError(f"memory_projection must be 'linear', 'mlp' or 'none', not {memory_projection!r}")
        if cache_implementation not in ("dynamic", "static"):
            raise ValueError(f"cache_implementation must be 'dynamic' or 'static', not {cache_implementation!r}")
        if compile and cache_implementation != "static":
            raise ValueError("compile needs cache_implementation: static (transformers compiles the decode step "
                             "only over a static KV cache)")
        if tokenizer is None:
            if model is None:
                raise ValueError("a `config` model needs a tokenizer, e.g. BPETokenizer(vocab_size=1000)")
            from xrg.data.tokenizers import HFTokenizer

            tokenizer = HFTokenizer(model)
        super().__init__(tokenizer)
        self.model_name, self.config = model, dict(config or {})
        self.lora, self.freeze_llm = lora, freeze_llm
        self.memory_projection = memory_projection
        self.dtype = getattr(torch, dtype)
        self.gradient_checkpointing, self.trust_remote_code = gradient_checkpointing, trust_remote_code
        self.attn_implementation = attn_implementation
        self.model_kwargs = dict(model_kwargs or {})
        self.save_frozen_base = save_frozen_base
        self._source_checksums: dict[str, list[float]] = {}
        self.register_state_dict_post_hook(drop_source_weights)
        self.max_length, self.max_new_tokens = max_length, max_new_tokens
        self.generation = {"num_beams": num_beams, "do_sample": do_sample, "temperature": temperature, "top_p": top_p}
        self.cache_implementation = cache_implementation
        self.compile = compile
        self.llm: nn.Module | None = None
        self.memory_proj: nn.Module | None = None
        self._finish_init(memory_dim)

    # --- building --------------------------------------------------------------------------
    @property
    def is_built(self) -> bool:
        return self.llm is not None

    @property
    def hidden_size(self) -> int:
        return self.llm.get_input_embeddings().embedding_dim

    def _build_vocab_layers(self) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM

        tok = self.tokenizer
        if self.model_name is not None:
            kwargs = {"dtype": self.dtype, "attn_implementation": self._attention(), **self.model_kwargs}
            if self.trust_remote_code:
                kwargs["trust_remote_code"] = True
            llm = AutoModelForCausalLM.from_pretrained(self.model_name, **kwargs)
            if tok.vocab_size > llm.get_input_embeddings().num_embeddings:
                llm.resize_token_embeddings(tok.vocab_size)
        else:
            settings = {k: v for k, v in self.config.items() if k != "model_type"}
            ids = {"bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id, "pad_token_id": tok.pad_id}
            config = AutoConfig.for_model(self.config.get("model_type", "llama"), vocab_size=tok.vocab_size, **ids, **settings)
            llm = AutoModelForCausalLM.from_config(config, attn_implementation=self._attention()).to(self.dtype)
        if self.freeze_llm or self.lora is not None:
            llm.requires_grad_(False)
            if self.model_name is not None and not self.save_frozen_base:
                self._source_checksums = frozen_base_checksums(llm)  # as read from `model`, before any step
        if self.lora is not None:
            from peft import LoraConfig, get_peft_model

            lora = self.lora
            llm = get_peft_model(
                llm,
                LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules), task_type="CAUSAL_LM"),
            )
        if self.gradient_checkpointing:
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.llm = llm
        if self.memory_dim is not None and self.memory_proj is None:
            self._build_memory_layers(self.memory_dim)

    def _attention(self) -> str:
        """`auto`: flash-attention 2 when the package is installed, a GPU is there and the weights
        are half precision (its only dtypes); otherwise PyTorch's fused SDPA kernels."""
        if self.attn_implementation != "auto":
            return self.attn_implementation
        import importlib.util

        half = self.dtype in (torch.bfloat16, torch.float16)
        if half and torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        return "sdpa"

    def _build_memory_layers(self, memory_dim: int) -> None:
        # The LLM's width is known only once it exists; `_build_vocab_layers` calls back here.
        if self.llm is None:
            return
        width = self.hidden_size
        if self.memory_projection == "none":
            if memory_dim != width:
                raise ValueError(f"memory_projection 'none' needs memory width {width}, got {memory_dim}")
            self.memory_proj = nn.Identity()
        elif self.memory_projection == "linear":
            self.memory_proj = nn.Linear(memory_dim, width)
        else:
            self.memory_proj = nn.Sequential(nn.Linear(memory_dim, width), nn.GELU(), nn.Linear(width, width))

    # --- prompts -> token sequences ----------------------------------------------------------
    def _prompt_ids(self, prompt: str, memory_tokens: int) -> tuple[list[int], list[tuple[int, int]]]:
        """BOS + prompt ids with slot markers; returns ids and (position, memory index) pairs."""
        ids, slots, used = [self.tokenizer.bos_id], [], 0
        if PLACEHOLDER.search(prompt) is None:
            prompt = IMAGE + prompt
        pieces = PLACEHOLDER.split(prompt)  # text, count, text, count, ..., text
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                ids += self.tokenizer.encode(piece) if piece else []
                continue
            count = memory_tokens - used if piece is None else int(piece)
            if used + count > memory_tokens:
                raise ValueError(f"prompt asks for {used + count} image slots but memory has {memory_tokens} tokens: {prompt[:80]!r}")
            slots += [(len(ids) + j, used + j) for j in range(count)]
            ids += [self.tokenizer.pad_id] * count  # placeholder ids; their embeddings are replaced
            used += count
        return ids, slots

    def _sequences(self, memory: Features, prompts: list[str] | None, targets: list[str] | None) -> Sequences:
        batch, memory_tokens = memory.tokens.shape[:2]
        prompts = prompts if prompts is not None else [IMAGE] * batch
        if len(prompts) != batch:
            raise ValueError(f"{len(prompts)} prompts for a memory batch of {batch}")
        rows, label_rows, slots = [], [], []
        for b, prompt in enumerate(prompts):
            ids, prompt_slots = self._prompt_ids(prompt, memory_tokens)
            labels = [IGNORE] * len(ids)
            if targets is not None:
                answer = self.tokenizer.encode(targets[b])[: self.max_length] + [self.tokenizer.eos_id]
                ids, labels = ids + answer, labels + answer
            rows.append(ids)
            label_rows.append(labels)
            slots += [(b, p, m) for p, m in prompt_slots]
        # Training pads on the right; generation on the left, so every prompt ends where
        # generation starts.
        left = targets is None
        width = max(len(r) for r in rows)
        ids = torch.full((batch, width), self.tokenizer.pad_id, dtype=torch.long)
        labels = torch.full((batch, width), IGNORE, dtype=torch.long)
        attention = torch.zeros(batch, width, dtype=torch.long)
        shift = []
        for b, (row, label_row) in enumerate(zip(rows, label_rows)):
            start = width - len(row) if left else 0
            shift.append(start)
            ids[b, start : start + len(row)] = torch.tensor(row)
            labels[b, start : start + len(row)] = torch.tensor(label_row)
            attention[b, start : start + len(row)] = 1
        slot = torch.tensor(slots, dtype=torch.long).view(-1, 3)
        slot_batch, slot_memory = slot[:, 0], slot[:, 2]
        slot_position = slot[:, 1] + torch.tensor(shift, dtype=torch.long)[slot_batch]
        if memory.mask is not None:  # slots holding padded (absent-view) memory are not attended
            attention[slot_batch, slot_position] = memory.mask.cpu()[slot_batch, slot_memory].long()
        device = memory.tokens.device
        return Sequences(
            ids.to(device),
            attention.to(device),
            None if targets is None else labels.to(device),
            slot_batch.to(device),
            slot_position.to(device),
            slot_memory.to(device),
        )

    def _embeddings(self, memory: Features, seq: Sequences) -> torch.Tensor:
        if self.memory_proj is None:
            raise RuntimeError("decoder has no memory projection: call bind_memory(visual_dim) first")
        embeds = self.llm.get_input_embeddings()(seq.ids)
        visual = self.memory_proj(memory.tokens)[seq.slot_batch, seq.slot_memory].to(embeds.dtype)
        return embeds.index_put((seq.slot_batch, seq.slot_position), visual)

    # --- the contract ----------------------------------------------------------------------
    def logits(self, memory: Features, targets: list[str], prompts: list[str] | None = None) -> torch.Tensor:
        """Teacher-forced logits `[B, T, V]` over prompt + target (right-padded)."""
        seq = self._sequences(memory, prompts, targets)
        out = self.llm(inputs_embeds=self._embeddings(memory, seq), attention_mask=seq.attention_mask, use_cache=False)
        return out.logits

    def loss(self, memory: Features, targets: list[str], prompts: list[str] | None = None) -> torch.Tensor:
        seq = self._sequences(memory, prompts, targets)
        out = self.llm(inputs_embeds=self._embeddings(memory, seq), attention_mask=seq.attention_mask, use_cache=False)
        logits = out.logits[:, :-1].float()
        return nn.functional.cross_entropy(logits.flatten(0, 1), seq.labels[:, 1:].flatten(), ignore_index=IGNORE)

    @torch.no_grad()
    def generate(self, memory: Features, prompts: list[str] | None = None, **overrides: Any) -> list[str]:
        settings = {**self.generation, "max_new_tokens": self.max_new_tokens, **overrides}
        if not settings["do_sample"]:  # HF warns about sampling knobs set while not sampling
            settings.pop("temperature"), settings.pop("top_p")
        seq = self._sequences(memory, prompts, None)
        tok = self.tokenizer
        ids = self.llm.generate(
            inputs_embeds=self._embeddings(memory, seq),
            attention_mask=seq.attention_mask,
            bos_token_id=tok.bos_id,
            eos_token_id=tok.eos_id,
            pad_token_id=tok.pad_id,
            **self._cache_settings(),
            **settings,
        )
        return tok.batch_decode(ids)

    def _cache_settings(self) -> dict[str, Any]:
        """`generate` arguments for the KV cache. With a static cache on a GPU, transformers compiles
        the decode step by itself; `disable_compile` keeps `compile: false` meaning what it says.
        With `compile`, the step is compiled on any device (on a CPU too, where it seldom pays)."""
        if self.cache_implementation == "dynamic":
            return {}
        if not self.compile:
            return {"cache_implementation": "static", "disable_compile": True}
        from transformers import CompileConfig

        config = CompileConfig(**(self.compile if isinstance(self.compile, dict) else {}))
        config._compile_all_devices = True  # transformers' own switch for compiling off-GPU
        return {"cache_implementation": "static", "compile_config": config}

    # --- LoRA adapters ---------------------------------------------------------------------
    def save_adapter(self, directory: str | Path) -> Path:
        """Write only the LoRA weights (peft format) to `directory`."""
        if not self._has_adapter():
            raise RuntimeError("this decoder has no LoRA adapter to save")
        self.llm.save_pretrained(str(directory))
        return Path(directory)

    def load_adapter(self, directory: str | Path) -> None:
        """Load LoRA weights saved by `save_adapter` onto this decoder's LLM."""
        from peft import PeftModel, load_peft_weights, set_peft_model_state_dict

        if self._has_adapter():
            set_peft_model_state_dict(self.llm, load_peft_weights(str(directory)))
        else:
            self.llm = PeftModel.from_pretrained(self.llm, str(directory), is_trainable=not self.freeze_llm)

    def merge_lora(self) -> None:
        """Fold the adapters into the base weights (inference/export); the LLM is plain again."""
        if not self._has_adapter():
            raise RuntimeError("this decoder has no LoRA adapter to merge")
        self.llm = self.llm.merge_and_unload()
        self.lora = None

    def export(self, directory: str | Path) -> Path:
        """The LLM (adapters merged in a copy if present) in HF format, loadable as `model=`."""
        import copy

        llm = copy.deepcopy(self.llm).merge_and_unload() if self._has_adapter() else self.llm
        llm.save_pretrained(str(directory))
        return Path(directory)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # may build the LLM
        extra = state_dict.get(prefix + "_extra_state")
        if isinstance(extra, dict) and OMITTED in extra:
            fill_source_weights(self, state_dict, prefix, extra[OMITTED])
        if self._has_adapter():
            _plain_to_lora_keys(state_dict, prefix + "llm.", self.llm)

    def _has_adapter(self) -> bool:
        from peft import PeftModel

        return isinstance(self.llm, PeftModel)


def _plain_to_lora_keys(state_dict: dict[str, torch.Tensor], prefix: str, peft_model: nn.Module) -> None:
    """Let a LoRA decoder start from a plain one's weights (stage chaining: the stage before had
    no adapters). Plain keys move under peft's names; the adapters keep their fresh values."""
    if not any(k.startswith(prefix) for k in state_dict) or any(k.startswith(prefix + "base_model.") for k in state_dict):
        return
    own = peft_model.state_dict()
    for key in [k for k in state_dict if k.startswith(prefix)]:
        name = "base_model.model." + key[len(prefix):]
        if name not in own:
            head, _, leaf = name.rpartition(".")
            name = f"{head}.base_layer.{leaf}"  # a layer peft wrapped keeps its weight in base_layer
        state_dict[prefix + name] = state_dict.pop(key)
    for name, value in own.items():
        if "lora_" in name:
            state_dict.setdefault(prefix + name, value)

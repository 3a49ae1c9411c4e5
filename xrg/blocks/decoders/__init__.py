from xrg.blocks.decoders.base import Decoder
from xrg.blocks.decoders.transformer import TransformerDecoder

__all__ = ["Decoder", "TransformerDecoder"]
from xrg.blocks.decoders.causal_lm import CausalLMDecoder, LoRASettings
from xrg.blocks.decoders.prompt import PromptBuilder

__all__ += ["CausalLMDecoder", "LoRASettings", "PromptBuilder"]

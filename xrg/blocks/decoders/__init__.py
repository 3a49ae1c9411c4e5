from xrg.blocks.decoders.base import Decoder
from xrg.blocks.decoders.transformer import TransformerDecoder

__all__ = ["Decoder", "TransformerDecoder"]

from xrg.blocks.encoders.base import Block, Features, ImageEncoder, TextEncoder
from xrg.blocks.encoders.timm_encoder import TimmImageEncoder

__all__ = ["Block", "Features", "ImageEncoder", "TextEncoder", "TimmImageEncoder"]

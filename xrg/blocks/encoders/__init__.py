from xrg.blocks.encoders.base import Block, Features, ImageEncoder, TextEncoder
from xrg.blocks.encoders.timm_encoder import TimmImageEncoder

__all__ = ["Block", "Features", "ImageEncoder", "TextEncoder", "TimmImageEncoder"]

from xrg.blocks.encoders.hf_text import HFTextEncoder, minilm_path  # noqa: E402

__all__ += ["HFTextEncoder", "minilm_path"]

from xrg.blocks.encoders.base import Block, Features, ImageEncoder, TextEncoder
from xrg.blocks.encoders.timm_encoder import TimmImageEncoder

__all__ = ["Block", "Features", "ImageEncoder", "TextEncoder", "TimmImageEncoder"]

from xrg.blocks.encoders.hf_text import HFTextEncoder, minilm_path  # noqa: E402

__all__ += ["HFTextEncoder", "minilm_path"]
from xrg.blocks.encoders.open_clip_encoders import ClipTokenizer, OpenClipImageEncoder, OpenClipTextEncoder  # noqa: E402

__all__ += ["ClipTokenizer", "OpenClipImageEncoder", "OpenClipTextEncoder"]
from xrg.blocks.encoders.hf_image import HFImageEncoder  # noqa: E402

__all__ += ["HFImageEncoder"]
from xrg.blocks.encoders.biovil import BioVilImageEncoder  # noqa: E402

__all__ += ["BioVilImageEncoder"]

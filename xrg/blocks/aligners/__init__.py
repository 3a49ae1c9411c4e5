from xrg.blocks.aligners.base import Aligner
from xrg.blocks.aligners.projector import MLPProjector

__all__ = ["Aligner", "MLPProjector"]
from xrg.blocks.aligners.qformer import QFormerAligner

__all__ += ["QFormerAligner"]

from xrg.blocks.aligners.base import Aligner
from xrg.blocks.aligners.grid_pool import GridPool
from xrg.blocks.aligners.projector import MLPProjector

__all__ = ["Aligner", "GridPool", "MLPProjector"]
from xrg.blocks.aligners.qformer import QFormerAligner

__all__ += ["QFormerAligner"]

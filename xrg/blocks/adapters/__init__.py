from xrg.blocks.adapters.base import Adapter
from xrg.blocks.adapters.unicross import UniCrossAdapter, UniCrossEncoder

__all__ = ["Adapter", "UniCrossAdapter", "UniCrossEncoder"]

from xrg.blocks.findings.base import FindingsHead, names_from_row

__all__ = ["FindingsHead", "names_from_row"]

"""LightningModules, one per training objective."""

from xrg.tasks.base import StageInit, XrgTask
from xrg.tasks.report_generation import ReportGeneration

__all__ = ["ReportGeneration", "StageInit", "XrgTask"]

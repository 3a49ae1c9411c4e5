from xrg.blocks.retrieval.base import Retrieved, Retriever
from xrg.blocks.retrieval.index import Neighbours, ReportIndex
from xrg.blocks.retrieval.retriever import ReportRetriever

__all__ = ["Neighbours", "ReportIndex", "ReportRetriever", "Retrieved", "Retriever"]

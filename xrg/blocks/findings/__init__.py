from xrg.blocks.findings.base import FindingsHead, names_from_row
from xrg.blocks.findings.classifier import FindingsClassifier

__all__ = ["FindingsClassifier", "FindingsHead", "names_from_row"]

from xrg.blocks.findings.concepts import ConceptAligner  # noqa: E402

__all__ += ["ConceptAligner"]

from xrg.blocks.findings.zero_shot import JointSpace, ZeroShotDiseasePerception  # noqa: E402

__all__ += ["JointSpace", "ZeroShotDiseasePerception"]

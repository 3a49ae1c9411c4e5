"""The embedded synthetic chest X-ray benchmark: phantoms with learnable findings and their reports.

    from xrg.data.synthetic import ensure_benchmark
    root = ensure_benchmark("data_cache/synth", num_studies=2000)   # cached, atomic
    # root/annotation.json, root/images/<id>/{0,1}.png, root/labels.json, root/findings.json

See docs/synthetic.md for what is rendered, prevalences and label semantics.
"""

from xrg.data.synthetic.benchmark import ensure_benchmark, generate_benchmark, render_for_annotation
from xrg.data.synthetic.findings import Findings, findings_from_labels, sample_findings
from xrg.data.synthetic.reports import write_report

__all__ = ["ensure_benchmark", "generate_benchmark", "render_for_annotation", "Findings",
           "findings_from_labels", "sample_findings", "write_report"]

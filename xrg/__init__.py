"""xrg: a Lightning component zoo for chest X-ray radiology report generation."""

__version__ = "0.1.0"

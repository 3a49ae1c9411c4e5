"""The block zoo: one folder per block kind, one base class per kind (see each `base.py`)."""

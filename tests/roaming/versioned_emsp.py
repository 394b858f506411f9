"""Merged into :mod:`tests.roaming.emsp_versions`, the one OCPI 2.1.1/2.3.0 test eMSP.

Only re-exports what tests/hub/test_hub_versions.py (being written elsewhere) still
imports from here; delete once it imports from tests.roaming.emsp_versions.
"""

from tests.roaming.emsp_versions import unknown_fields

__all__ = ["unknown_fields"]

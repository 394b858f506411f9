"""Conversions between each OCPI version's wire models and the internal form, the
OCPI 2.2.1 models of :mod:`ocpi.v221` (what the gateway's roaming layer and the hub
speak). One module per version (``ocpi.versions.v211``, ...), pure functions both ways.

These are the only modules that import two versions' models; they may import the
version packages (``ocpi.v211``, ``ocpi.v221``, ``ocpi.v230``) and
:mod:`ocpi.transport`, nothing else of ``ocpi`` and never ``gateway``.

A field that does not exist in the target version is dropped, or mapped as the spec's
changelog says; each module's docstring lists its lossy mappings. An object that cannot
be expressed in the target version at all raises :class:`NotExpressible`, so that the
caller (the hub) can answer the sender with a clear OCPI error instead of sending a
malformed object.
"""

from __future__ import annotations

__all__ = ["INTERNAL_VERSION", "SUPPORTED_VERSIONS", "NotExpressible", "version_key"]

INTERNAL_VERSION = "2.2.1"
"""The version of the internal form (the models of :mod:`ocpi.v221`)."""

SUPPORTED_VERSIONS = ("2.1.1", "2.2.1", "2.3.0")
"""The OCPI versions this code speaks, oldest first (a versions list is in this order)."""


def version_key(version: str) -> tuple[int, ...]:
    """``"2.3.0"`` as ``(2, 3, 0)``, for picking the highest of several versions; a
    version that is not dotted numbers sorts first (``()``)."""
    parts = version.split(".")
    if not all(part.isascii() and part.isdigit() for part in parts):
        return ()
    return tuple(int(part) for part in parts)


class NotExpressible(ValueError):
    """The object cannot be expressed in ``version``: ``field`` (a path such as
    ``evses[0].connectors[1].standard``) and the ``reason``."""

    def __init__(self, field: str, reason: str, *, version: str) -> None:
        super().__init__(f"{field}: {reason} (cannot be expressed in OCPI {version})")
        self.field = field
        self.reason = reason
        self.version = version

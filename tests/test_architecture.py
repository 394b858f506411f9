"""One direction of imports, as each package's docstring says (checked on the source)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> prefixes it must never import
FORBIDDEN = {
    "ocpi": ("gateway",),
    "gateway.domain": ("gateway.storage", "gateway.csms", "gateway.cluster", "gateway.roaming", "gateway.admin", "gateway.app", "gateway.keys", "ocpi", "ocpp"),
    "gateway.storage": ("gateway.csms", "gateway.cluster", "gateway.roaming", "gateway.admin", "gateway.app", "gateway.keys", "ocpi", "ocpp"),
    "gateway.csms": ("gateway.cluster", "gateway.roaming", "gateway.hub", "gateway.admin", "gateway.app", "gateway.keys", "ocpi"),
    "gateway.roaming": ("gateway.csms", "gateway.cluster", "gateway.hub", "gateway.admin", "gateway.app", "gateway.keys", "ocpp"),
    "gateway.hub": ("gateway.csms", "gateway.cluster", "gateway.admin", "gateway.app", "gateway.keys", "ocpp"),
    # Routes commands between processes: knows the central system, not the OCPI side.
    "gateway.cluster": ("gateway.roaming", "gateway.hub", "gateway.admin", "gateway.app", "gateway.keys", "ocpi", "ocpp"),
    # Site load management: the domain and storage only; chargers through CommandSender.
    "gateway.smart": ("gateway.csms", "gateway.cluster", "gateway.roaming", "gateway.hub", "gateway.admin", "gateway.app", "gateway.keys", "ocpi", "ocpp"),
    # Local authorization lists: the domain and storage only; chargers through CommandSender.
    "gateway.locallist": ("gateway.csms", "gateway.cluster", "gateway.roaming", "gateway.hub", "gateway.admin", "gateway.app", "gateway.keys", "gateway.smart", "ocpi", "ocpp"),
    # Reports: the domain and the store interfaces; never the protocols or the web parts.
    "gateway.reports": ("gateway.csms", "gateway.cluster", "gateway.roaming", "gateway.hub", "gateway.admin", "gateway.app", "gateway.keys", "gateway.smart", "gateway.cli", "gateway.storage.sqlite", "gateway.storage.redis", "ocpi", "ocpp", "aiohttp"),
    # The dashboard: pages over the admin API; its sessions and event feed, never the parts behind it.
    "gateway.dashboard": ("gateway.csms", "gateway.cluster", "gateway.roaming", "gateway.hub", "gateway.smart", "gateway.storage", "gateway.app", "gateway.cli", "ocpi", "ocpp"),
    # One OCPI version's wire models: never another version's, nor the conversions.
    "ocpi.v211": ("ocpi.v221", "ocpi.v230", "ocpi.versions", "ocpi.client", "ocpi.server", "ocpi.hub", "ocpi.tariffs"),
    "ocpi.v230": ("ocpi.v211", "ocpi.v221", "ocpi.versions", "ocpi.client", "ocpi.server", "ocpi.hub", "ocpi.tariffs"),
}

# package -> the only first-party modules it may import (besides the standard library
# and pydantic): the conversions between versions see the version packages and transport.
ONLY = {
    "ocpi.versions": ("ocpi.versions", "ocpi.v211", "ocpi.v221", "ocpi.v230", "ocpi.transport"),
}


# The pure parts of the reports: the standard library and the domain only.
PURE = ("gateway/reports/periods.py", "gateway/reports/compute.py", "gateway/reports/request.py")


@pytest.mark.parametrize("module", PURE)
def test_pure_report_modules(module: str) -> None:
    allowed = ("gateway.domain", "gateway.reports")
    outside = [
        name
        for name in _imports(ROOT / module)
        if name.startswith(("gateway", "ocpi", "ocpp", "aiohttp", "redis", "pydantic"))
        and not name.startswith(allowed)
    ]
    assert outside == []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package: str) -> None:
    folder = ROOT.joinpath(*package.split("."))
    files = sorted(folder.rglob("*.py"))
    assert files, package
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in _imports(path)
        if any(name == p or name.startswith(p + ".") for p in FORBIDDEN[package])
    ]
    assert offenders == []


@pytest.mark.parametrize("package", sorted(ONLY))
def test_import_allowlist(package: str) -> None:
    folder = ROOT.joinpath(*package.split("."))
    files = sorted(folder.rglob("*.py"))
    assert files, package
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in _imports(path)
        if name.split(".")[0] not in (*sys.stdlib_module_names, "pydantic")
        and not any(name == p or name.startswith(p + ".") for p in ONLY[package])
    ]
    assert offenders == []

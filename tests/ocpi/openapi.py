"""Validate OCPI objects against the official OpenAPI description in ``../shared``.

The OpenAPI files (``<repo>/../shared/specs/ocpi-openapi/<version>``, 2.2.1 and 2.3.0) are
OpenAPI 3.1, whose
schema objects are JSON Schema 2020-12: every YAML file is loaded as one resource of a
``referencing`` registry under its ``file://`` URI, so ``$ref`` across files
(``../../components/schema.yaml#/components/schemas/Price``) resolves as usual. The
OpenAPI-only keywords (``x-enumDescriptions``, ``example``, ``format: enum``/``open-enum``)
are annotations and do not constrain. ``date-time`` (RFC 3339) and ``uri`` formats are
checked. The YAML is read with YAML 1.2 booleans (``true``/``false`` only): the 2.3.0 files
list the TaxIncluded values ``YES`` and ``NO`` unquoted, which YAML 1.1 would read as
booleans.

Public helpers, for these tests and the gateway's::

    validate_against_openapi("locations", "Location", location)   # model or JSON value
    validate_envelope(body, "locations", "Location", many=True)   # a whole response body
    openapi_errors("tokens", "Token", obj)                        # the messages, no raise
    validate_against_openapi("payments", "Terminal", t, version="2.3.0")

Every helper takes ``version`` (keyword, default ``"2.2.1"``).

``module`` is a directory under ``modules/`` (``locations``, ``tokens``...) or
``components`` for the shared ``components/schema.yaml`` (Price, DisplayText...). When
``../shared`` is absent the helpers skip the calling test.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ocpi.transport import json_dumps

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SPECS = SHARED / "specs" / "ocpi-openapi"
DEFAULT_VERSION = "2.2.1"
SPEC_DIR = SPECS / DEFAULT_VERSION

__all__ = [
    "DEFAULT_VERSION",
    "SPEC_DIR",
    "openapi_available",
    "openapi_errors",
    "schema_names",
    "validate_against_openapi",
    "validate_envelope",
]


def spec_dir(version: str = DEFAULT_VERSION) -> Path:
    """The folder of one version's OpenAPI files."""
    return SPECS / version


def openapi_available(version: str = DEFAULT_VERSION) -> bool:
    return (spec_dir(version) / "components" / "schema.yaml").is_file()


def _require_spec(version: str) -> None:
    if not openapi_available(version):
        pytest.skip(f"OCPI {version} OpenAPI description not found at {spec_dir(version)}")


def schema_file(module: str, version: str = DEFAULT_VERSION) -> Path:
    """The schema.yaml of ``module`` (or ``components``) in ``version``."""
    if module == "components":
        return spec_dir(version) / "components" / "schema.yaml"
    path = spec_dir(version) / "modules" / module / "schema.yaml"
    if not path.is_file():
        raise ValueError(f"no OpenAPI schema file for module {module!r} ({path})")
    return path


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: only true/false (any case)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), [_first]
    )


def load_yaml(path: Path) -> Any:
    """A YAML file read with YAML 1.2 booleans."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)


@cache
def _registry(version: str) -> Registry:
    registry: Registry = Registry()
    for path in sorted(spec_dir(version).rglob("*.yaml")):
        document = load_yaml(path)
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        registry = registry.with_resource(path.resolve().as_uri(), resource)
    return registry.crawl()


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


@_FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{value!r} is not an absolute URI")
    return True


@cache
def _validator(module: str, schema_name: str, version: str) -> Draft202012Validator:
    uri = schema_file(module, version).resolve().as_uri()
    document = _registry(version).contents(uri)
    if schema_name not in document.get("components", {}).get("schemas", {}):
        raise ValueError(f"{version} {module}/schema.yaml has no schema {schema_name!r}")
    return Draft202012Validator(
        {"$ref": f"{uri}#/components/schemas/{schema_name}"},
        registry=_registry(version),
        format_checker=_FORMATS,
    )


def schema_names(module: str, *, version: str = DEFAULT_VERSION) -> list[str]:
    """The schema names a module's schema.yaml defines."""
    _require_spec(version)
    uri = schema_file(module, version).resolve().as_uri()
    return sorted(_registry(version).contents(uri)["components"]["schemas"])


def openapi_schema(module: str, name: str, *, version: str = DEFAULT_VERSION) -> dict[str, Any]:
    """One component schema as written in the file (``$ref`` not resolved)."""
    _require_spec(version)
    uri = schema_file(module, version).resolve().as_uri()
    schema: dict[str, Any] = _registry(version).contents(uri)["components"]["schemas"][name]
    return schema


def _as_json(obj: Any) -> Any:
    """Models and values with Decimal/datetime as the JSON the wire would carry."""
    return json.loads(json_dumps(obj))


def openapi_errors(
    module: str, schema_name: str, obj: Any, *, version: str = DEFAULT_VERSION
) -> list[str]:
    """Every violation of ``module``'s ``schema_name`` by ``obj`` (a pydantic model or
    a JSON value), as ``path: message`` strings; empty when valid."""
    _require_spec(version)
    instance = _as_json(obj)
    errors = sorted(
        _validator(module, schema_name, version).iter_errors(instance),
        key=lambda e: list(e.path),
    )
    return [f"{e.json_path}: {e.message}" for e in errors]


def validate_against_openapi(
    module: str, schema_name: str, obj: Any, *, version: str = DEFAULT_VERSION
) -> None:
    """Assert that ``obj`` is a valid ``schema_name`` of ``module``."""
    errors = openapi_errors(module, schema_name, obj, version=version)
    assert not errors, (
        f"{version} {module}/{schema_name} invalid per the OpenAPI description:\n"
        + "\n".join(errors)
    )


def validate_envelope(
    body: Any,
    module: str | None = None,
    schema_name: str | None = None,
    *,
    many: bool = False,
    version: str = DEFAULT_VERSION,
) -> None:
    """Assert that ``body`` is an OCPI response envelope (components OCPIResponse, plus
    an int status_code and a date-time timestamp) and, when a schema is named, that its
    ``data`` is one (or, with ``many``, a list) of them."""
    _require_spec(version)
    instance = _as_json(body)
    validate_against_openapi("components", "OCPIResponse", instance, version=version)
    assert isinstance(instance, dict), "an envelope is a JSON object"
    assert isinstance(instance.get("status_code"), int), "status_code is required"
    assert isinstance(instance.get("timestamp"), str), "timestamp is required"
    if module is None or schema_name is None:
        return
    data = instance.get("data")
    if many:
        assert isinstance(data, list), f"data should be a list, got {type(data).__name__}"
        for item in data:
            validate_against_openapi(module, schema_name, item, version=version)
    else:
        validate_against_openapi(module, schema_name, data, version=version)

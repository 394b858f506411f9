"""OCPI and admin request bodies for the fuzz suite.

The OCPI operations (method, path template, body schema) are read from the official
OpenAPI description's receiver interfaces and credentials interface in
``<repo>/../shared/specs/ocpi-openapi/2.2.1``; bodies are generated from the schemas
they name (valid per the description, checked with ``tests.ocpi.openapi``), then
mutated as raw JSON text. Admin bodies come from the OCPI Location and Tariff schemas
and from the admin API's own pydantic models (``model_json_schema()``).

CI skips nothing: a missing ``../shared`` fails the suite with the path it looked at.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

import pytest
import yaml

from tests.fuzz.ocpp_frames import BIG_NUMBERS, EDGE_TIMESTAMPS
from tests.fuzz.schemagen import SchemaGen, inline_refs, other_kind, paths, replaced, valid_examples
from tests.ocpi.openapi import openapi_errors

JSON = Any
ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT.parent / "shared" / "specs" / "ocpi-openapi" / "2.2.1"
RECEIVER_MODULES = ("locations", "tariffs", "sessions", "cdrs", "tokens", "commands", "chargingprofiles")


def require_spec() -> None:
    if not (SPEC_DIR / "components" / "schema.yaml").is_file():
        pytest.fail(
            f"the OCPI 2.2.1 OpenAPI description is missing: expected {SPEC_DIR} "
            "(the shared/ folder beside the repository)"
        )


@cache
def _document(uri: str) -> JSON:
    path = Path(uri.removeprefix("file://"))
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _load(uri: str) -> JSON:
    return _document(urldefrag(uri)[0])


@dataclass(frozen=True)
class Operation:
    module: str
    method: str
    path: str  # the template below /ocpi/2.2.1, e.g. /tokens/{country_code}/{party_id}/{token_uid}
    schema_module: str  # where the body schema lives, for validation
    schema_name: str
    schema: JSON  # inlined


def operations(module: str) -> list[Operation]:
    """Every operation with a JSON request body in ``module``'s receiver interface (or
    the credentials interface)."""
    require_spec()
    name = "interface.yaml" if module == "credentials" else "receiver-interface.yaml"
    path = SPEC_DIR / "modules" / module / name
    uri = path.resolve().as_uri()
    out = []
    for template, item in _document(uri)["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "requestBody" not in op:
                continue
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            ref = schema["$ref"]
            schema_module = Path(path.parent, ref.split("#")[0]).resolve().parent.name
            schema_name = ref.rsplit("/", 1)[-1]
            out.append(
                Operation(module, method.upper(), template, schema_module, schema_name, inline_refs(schema, uri, _load))
            )
    assert out, f"no operations with a body in {path}"
    return out


def ocpi_schema(module: str, name: str) -> JSON:
    require_spec()
    uri = (SPEC_DIR / "modules" / module / "schema.yaml").resolve().as_uri()
    return inline_refs({"$ref": f"#/components/schemas/{name}"}, uri, _load)


# -- bodies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    data: bytes | None
    kind: str  # the mutation, for the report
    # A JSON object, as every operation takes; False: must be refused; None: JSON null,
    # which an operation whose body is optional may take as no body.
    readable: bool | None


class BodyFactory:
    """Valid bodies of a schema (a pool, made once) and their mutations."""

    def __init__(self, rng: random.Random, schema: JSON, is_valid: Any, *, label: str, pool: int = 6) -> None:
        self.rng = rng
        self.pool = valid_examples(SchemaGen(rng), schema, is_valid, pool, label=label)

    def valid(self) -> JSON:
        return json.loads(json.dumps(self.rng.choice(self.pool)))  # a copy to adjust

    def body(self, value: JSON) -> Body:
        """``value`` (a valid body, maybe adjusted) as sent, or one of its mutations."""
        rng = self.rng
        kinds = ["valid"] * 7 + ["wrong_type"] * 3 + ["missing"] + ["big_number"] * 2 + [
            "surrogate"] * 2 + ["deep_nesting", "timestamp_edge", "oversize_string", "malformed", "not_object", "bad_utf8"]
        kind = rng.choice(kinds)
        text = json.dumps(value)
        readable = True
        if kind == "wrong_type" and paths(value):
            path = rng.choice(paths(value))
            node: Any = value
            for key in path:
                node = node[key]
            text = json.dumps(replaced(value, path, other_kind(rng, node)))
        elif kind == "missing" and isinstance(value, dict) and value:
            text = json.dumps({k: v for k, v in value.items() if k != rng.choice(sorted(value))})
        elif kind in ("big_number", "surrogate", "timestamp_edge", "oversize_string"):
            literal = {
                "big_number": rng.choice([*BIG_NUMBERS, "NaN", "Infinity"]),
                "surrogate": '"' + rng.choice(["\\ud800", "\\udfff", "x\\udbff", "\\udc00\\ud800"]) + '"',
                "timestamp_edge": json.dumps(rng.choice(EDGE_TIMESTAMPS)),
                "oversize_string": json.dumps("x" * rng.choice([37, 256, 10_000, 200_000, 1_100_000])),
            }[kind]
            targets = paths(value) or [()]
            marker = "\u0001MARK\u0001"
            text = json.dumps(replaced(value, rng.choice(targets), marker)).replace(json.dumps(marker), literal, 1)
        elif kind == "deep_nesting":
            depth = rng.choice([500, 1000, 5000, 100_000])
            nested = "[" * depth + "]" * depth
            targets = [p for p in paths(value)] or [()]
            marker = "\u0001MARK\u0001"
            text = json.dumps(replaced(value, rng.choice(targets), marker)).replace(json.dumps(marker), nested, 1)
        elif kind == "malformed":
            readable = False
            text = rng.choice([text[: rng.randint(0, max(0, len(text) - 1))], text + "}", "{'a': 1}", "{a:1}", "{,}"])
        elif kind == "not_object":
            text = rng.choice(["[]", "null", "1", '"text"', "true", "[" + text + "]"])
            readable = None if text == "null" else False
        elif kind == "bad_utf8":
            return Body(text.encode()[: max(1, len(text) // 2)] + b"\xff\xfe\xc3" + text.encode()[len(text) // 2 :], kind, False)
        else:
            kind = "valid"
        return Body(text.encode(), kind, readable)


def openapi_valid(module: str, name: str) -> Any:
    return lambda value: not openapi_errors(module, name, value)


def pydantic_schema(model: Any) -> JSON:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    return inline_refs(schema, "urn:admin", lambda _uri: {"$defs": defs})

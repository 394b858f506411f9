"""Values generated from JSON Schema, deterministically from a ``random.Random``.

Covers what the three schema sources of the fuzz suite use: the OCPP JSON schemas the
``ocpp`` package ships (draft-04 for 1.6, draft-06 for 2.0.1, ``#/definitions`` refs),
the OCPI 2.2.1 OpenAPI 3.1 schemas (JSON Schema 2020-12, refs across YAML files,
``format: enum``/``open-enum`` annotations) and the admin API's pydantic models
(``model_json_schema()``, ``#/$defs`` refs, ``anyOf`` with ``null``).

hypothesis-jsonschema would do this, but its last release (0.23.1) calls a Hypothesis
internal that Hypothesis 6.1xx removed (``cu.many.more``), so it cannot run on the
Hypothesis this project tests with. Every value the generator calls valid is checked
against the schema with ``jsonschema`` by the callers (:func:`valid_examples`), so a
generator bug shows up as a failing check, never as silently invalid "valid" input.

:func:`inline_refs` resolves every ``$ref`` first (the schemas have no recursion), so
generation and mutation work on one self-contained tree.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urldefrag, urljoin

JSON = Any
Loader = Callable[[str], JSON]  # absolute URI without fragment -> the document

_ANNOTATIONS = {"description", "example", "examples", "title", "x-enumDescriptions", "javaType",
                "comment", "$comment", "$id", "id", "$schema", "default", "tsEnumNames"}


def _pointer(document: JSON, fragment: str) -> JSON:
    node = document
    for part in [p for p in fragment.lstrip("/").split("/") if p]:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def inline_refs(schema: JSON, base: str, load: Loader, _stack: tuple[str, ...] = ()) -> JSON:
    """``schema`` (found in the document at ``base``) with every ``$ref`` replaced by its
    target, recursively; annotations dropped. A recursive schema raises ValueError."""
    if isinstance(schema, list):
        return [inline_refs(s, base, load, _stack) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = urljoin(base, schema["$ref"])
        if target in _stack:
            raise ValueError(f"recursive schema at {target}")
        doc_uri, fragment = urldefrag(target)
        resolved = inline_refs(
            _pointer(load(doc_uri), fragment), doc_uri, load, (*_stack, target)
        )
        siblings = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
        if siblings:  # OpenAPI 3.1 / 2020-12: $ref beside other keywords means allOf
            return {"allOf": [resolved, inline_refs(siblings, base, load, _stack)]}
        return resolved
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS or key.startswith("x-"):
            continue
        if key in ("properties", "patternProperties", "definitions", "$defs"):
            out[key] = {k: inline_refs(v, base, load, _stack) for k, v in value.items()}
        elif key == "format" and value in ("enum", "open-enum"):
            continue  # OpenAPI annotations of OCPI's enum types, no constraint
        else:
            out[key] = inline_refs(value, base, load, _stack)
    out.pop("definitions", None)
    out.pop("$defs", None)
    return out


def merge_all_of(schema: JSON) -> JSON:
    """One schema for an ``allOf`` of object schemas (properties and required united)."""
    parts = [merge_all_of(p) for p in schema["allOf"]]
    rest = {k: v for k, v in schema.items() if k != "allOf"}
    merged: dict[str, Any] = {}
    for part in [*parts, rest]:
        for key, value in part.items():
            if key == "properties":
                merged.setdefault("properties", {}).update(value)
            elif key == "required":
                merged["required"] = sorted(set(merged.get("required", [])) | set(value))
            elif key not in merged:
                merged[key] = value
    return merged


# Strings that look ordinary and strings that do not (every one valid JSON text).
_ALPHABETS = [
    string.ascii_letters + string.digits,
    string.ascii_uppercase + string.digits + "-_*",
    string.printable.strip(),
    "àéüßçøñ€中文한국어",
    "\U0001f50c\U0001f697\u200b\u00a0\u202e",  # emoji (non-BMP), zero width, RTL override
]


class SchemaGen:
    """Generates values of a (ref-free) schema; ``optional`` is the chance that an
    optional property is present."""

    def __init__(self, rng: random.Random, *, optional: float = 0.5, max_items: int = 3) -> None:
        self.rng = rng
        self.optional = optional
        self.max_items = max_items

    # -- strings -------------------------------------------------------------

    def text(self, min_len: int = 0, max_len: int = 20) -> str:
        rng = self.rng
        hi = min(max_len, min_len + rng.choice([3, 8, 20, 40]))
        n = rng.randint(min_len, max(min_len, hi))
        alphabet = rng.choice(_ALPHABETS) if rng.random() < 0.3 else _ALPHABETS[0]
        return "".join(rng.choice(alphabet) for _ in range(n))

    def timestamp(self) -> str:
        rng = self.rng
        moment = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 40 * 365 * 86400))
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        if rng.random() < 0.3:
            text += "." + str(rng.randint(0, 999)).zfill(3)
        return text + rng.choice(["Z", "Z", "+00:00", "+02:00", "-05:30"])

    def _pattern(self, pattern: str, max_len: int | None) -> str:
        rng = self.rng
        if pattern == "^([0-1][0-9]|2[0-3]):[0-5][0-9]$":
            return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        if pattern == r"^\d{4}-\d{2}-\d{2}$":
            day = datetime(2020, 1, 1) + timedelta(days=rng.randint(0, 3000))
            return day.strftime("%Y-%m-%d")
        if pattern in (r"-?[0-9]{1,2}\.[0-9]{5,7}", r"-?[0-9]{1,3}\.[0-9]{5,7}"):
            whole = rng.randint(0, 89 if "{1,2}" in pattern else 179)
            sign = "-" if rng.random() < 0.3 else ""
            return f"{sign}{whole}.{rng.randint(0, 10**6 - 1):06d}"
        raise ValueError(f"no generator for pattern {pattern!r}")

    def _string(self, schema: JSON) -> str:
        rng = self.rng
        min_len = int(schema.get("minLength", 0))
        max_len = int(schema.get("maxLength", max(min_len, 40)))
        fmt = schema.get("format")
        if "pattern" in schema:
            return self._pattern(schema["pattern"], max_len)
        if fmt == "date-time":
            return self.timestamp()
        if fmt == "date":
            return self._pattern(r"^\d{4}-\d{2}-\d{2}$", max_len)
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if fmt in ("uri", "url"):
            # Port 9 (discard) on loopback: a gateway that calls it fails fast, offline.
            url = "http://127.0.0.1:9/" + self.text(0, 12).replace("/", "")
            return url[:max_len] if len(url) > max_len else url
        if rng.random() < 0.05:
            return "x" * max_len  # exactly at the bound
        return self.text(min_len, max_len)

    # -- numbers ----------------------------------------------------------------

    def _bounds(self, schema: JSON, integer: bool) -> tuple[float, float]:
        lo = schema.get("minimum", -(2**31) if integer else -1e6)
        hi = schema.get("maximum", 2**31 - 1 if integer else 1e6)
        step = 1 if integer else 1e-3
        ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if ex_lo is True:  # draft-04 boolean form
            lo += step
        elif isinstance(ex_lo, int | float) and not isinstance(ex_lo, bool):
            lo = max(lo, ex_lo + step)
        if ex_hi is True:
            hi -= step
        elif isinstance(ex_hi, int | float) and not isinstance(ex_hi, bool):
            hi = min(hi, ex_hi - step)
        return lo, hi

    def _integer(self, schema: JSON) -> int:
        lo, hi = (int(b) for b in self._bounds(schema, True))
        if self.rng.random() < 0.8:  # mostly small, as real payloads are
            start = max(lo, min(0, hi))
            return self.rng.randint(start, min(hi, start + 100))
        return self.rng.randint(lo, hi)

    def _number(self, schema: JSON) -> float | int:
        rng = self.rng
        lo, hi = self._bounds(schema, False)
        multiple = schema.get("multipleOf")
        if multiple:
            k_lo, k_hi = int(lo / multiple) + 1, int(min(hi, 10_000) / multiple)
            return round(rng.randint(k_lo, max(k_lo, k_hi)) * multiple, 10)
        if rng.random() < 0.3:
            return rng.randint(int(max(lo, 0)), int(min(hi, 1000)))
        return round(rng.uniform(max(lo, -1e4), min(hi, 1e4)), rng.choice([1, 2, 3, 4]))

    # -- structures ---------------------------------------------------------------

    def value(self, schema: JSON, depth: int = 0) -> JSON:
        rng = self.rng
        if schema is True or schema == {}:
            return self.text()
        if "allOf" in schema:
            return self.value(merge_all_of(schema), depth)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = schema[key]
                # Prefer a non-null branch, as a real client mostly would.
                non_null = [o for o in options if o.get("type") != "null"]
                pick = rng.choice(non_null if non_null and rng.random() < 0.85 else options)
                rest = {k: v for k, v in schema.items() if k != key}
                return self.value({**rest, **pick} if rest else pick, depth)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = rng.choice([k for k in kind if k != "null"] or kind)
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            lo = int(schema.get("minItems", 0))
            hi = int(schema.get("maxItems", lo + self.max_items))
            n = rng.randint(lo, max(lo, min(hi, lo + (self.max_items if depth < 4 else 1))))
            items = schema.get("items", {})
            return [self.value(items, depth + 1) for _ in range(n)]
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "null":
            return None
        raise ValueError(f"cannot generate type {kind!r}")

    def _object(self, schema: JSON, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        required = set(schema.get("required", []))
        for name, sub in schema.get("properties", {}).items():
            if name in required or self.rng.random() < (self.optional if depth < 4 else 0.15):
                out[name] = self.value(sub, depth + 1)
        return out


def valid_examples(
    gen: SchemaGen, schema: JSON, is_valid: Callable[[JSON], bool], count: int, *, label: str
) -> list[JSON]:
    """``count`` values of ``schema`` that ``is_valid`` accepts (a few tries each)."""
    out: list[JSON] = []
    for _ in range(count):
        for _attempt in range(30):
            candidate = gen.value(schema)
            if is_valid(candidate):
                out.append(candidate)
                break
        else:
            raise AssertionError(f"the generator makes no valid {label} (last: {candidate!r:.500})")
    return out


# -- mutation helpers -------------------------------------------------------------------


def paths(value: JSON, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) to a node of ``value``, the root excluded."""
    out: list[tuple[Any, ...]] = []
    items: list[tuple[Any, JSON]] = (
        list(value.items()) if isinstance(value, dict) else list(enumerate(value)) if isinstance(value, list) else []
    )
    for key, child in items:
        here = (*prefix, key)
        out.append(here)
        out.extend(paths(child, here))
    return out


def replaced(value: JSON, path: tuple[Any, ...], new: JSON) -> JSON:
    """A copy of ``value`` with the node at ``path`` replaced by ``new``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy: Any = dict(value)
    else:
        copy = list(value)
    copy[head] = replaced(value[head], rest, new)
    return copy


def json_kind(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def other_kind(rng: random.Random, value: JSON) -> JSON:
    """A value of another JSON kind than ``value`` (so it breaks a single-type schema)."""
    choices: list[JSON] = [None, True, 17, "seventeen", [1, 2], {"k": "v"}]
    return rng.choice([c for c in choices if json_kind(c) != json_kind(value)])

"""JSON in and out without ever turning money into binary floating point."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def loads(text: str) -> Any:
    """Decode JSON with every non-integer number as ``Decimal`` (0.1 stays 0.1)."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: object, *, indent: int = 2) -> str:
    """Encode dicts, lists, strings, ints, bools, None and ``Decimal`` (as a plain JSON
    number, digits exactly as held: ``Decimal("5.50")`` is written ``5.50``)."""
    out: list[str] = []
    _write(value, out, indent, 0)
    return "".join(out)


def _write(value: object, out: list[str], indent: int, level: int) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as JSON")
        out.append(format(value, "f"))
    elif isinstance(value, bool) or value is None or isinstance(value, int | str):
        out.append(json.dumps(value))
    elif isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        pad = "\n" + " " * (indent * (level + 1))
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + pad + json.dumps(str(key)) + ": ")
            _write(item, out, indent, level + 1)
        out.append("\n" + " " * (indent * level) + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        pad = "\n" + " " * (indent * (level + 1))
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + pad)
            _write(item, out, indent, level + 1)
        out.append("\n" + " " * (indent * level) + "]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

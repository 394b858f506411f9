"""Hypothesis strategies for OCPI wire models of any version, read from the models.

:func:`objects` walks a pydantic model's fields and draws each from its type and
constraints: string lengths, patterns and the CiString/URL validators, ``Int`` bounds,
exact ``Number`` decimals, millisecond UTC timestamps, enum members (open enums draw
their known members only, so that the objects are valid against the OpenAPI files),
nested models and lists within their ``min_length``. Optional fields are sometimes left
out. Realism comes from field names (:data:`REALISTIC`): country codes, party ids,
currencies, languages, time zones and ISO 3166 alpha-3 countries are drawn from real
ones. ``overrides`` replace the draw of one field of one model, ``(Model, field)``, or
of a field name in any model, ``(None, field)``; ``exclude`` names enum values never
drawn (say, the values a version added, to build objects an older version can hold).

The draws are dicts of Python values (enum members, ``Decimal``, ``datetime``), and
:func:`objects` validates them with the model, so every object is a real model instance.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar, get_args, get_origin

import annotated_types
from hypothesis import strategies as st
from pydantic import BaseModel, StringConstraints
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=BaseModel)
Overrides = Mapping[tuple[type[BaseModel] | None, str], st.SearchStrategy[Any]]

_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_WORDS = st.sampled_from(
    ["Main", "Street", "Plaza", "Station", "Noord", "Zuid", "Garage", "Parc", "Straße",
     "Café", "Łódź", "Høj", "A1", "12", "-", "Ave", "Rue", "Weg"]
)  # fmt: skip

REALISTIC: dict[str, st.SearchStrategy[Any]] = {
    "country_code": st.sampled_from(["NL", "DE", "BE", "FR", "US", "CA", "GB", "CH"]),
    "party_id": st.sampled_from(["TNM", "EXA", "ABC", "BEC", "ALL", "CPO", "MSP"]),
    "currency": st.sampled_from(["EUR", "USD", "CAD", "GBP", "CHF"]),
    "language": st.sampled_from(["en", "nl", "de", "fr", "es"]),
    "country": st.sampled_from(["NLD", "DEU", "BEL", "FRA", "USA", "CAN", "GBR"]),
    "id": st.from_regex(r"[A-Za-z0-9-]{1,36}", fullmatch=True),
    "uid": st.from_regex(r"[A-Z0-9]{4,16}", fullmatch=True),
    "terminal_id": st.uuids().map(str),
    "time_zone": st.sampled_from(
        ["Europe/Amsterdam", "Europe/Berlin", "America/Toronto", "America/New_York", "UTC"]
    ),
}


def _text(max_size: int | None, min_size: int, *, ascii_only: bool) -> st.SearchStrategy[str]:
    cap = 40 if max_size is None else min(max_size, 40)
    if ascii_only:
        return st.text(_PRINTABLE, min_size=min_size, max_size=max(cap, min_size))
    words = st.lists(_WORDS, min_size=1, max_size=4).map(" ".join)
    free = st.text(
        st.characters(blacklist_categories=("Cs", "Cc")), min_size=min_size, max_size=cap
    )
    return st.one_of(words, free).filter(
        lambda s: min_size <= len(s) <= (max_size if max_size is not None else 10**6)
    )


def _urls() -> st.SearchStrategy[str]:
    host = st.sampled_from(["example.com", "ocpi.example.net", "cpo.test", "127.0.0.1:8080"])
    path = st.lists(st.from_regex(r"[a-z0-9_.~-]{1,12}", fullmatch=True), max_size=4)
    return st.builds(
        lambda scheme, h, p: f"{scheme}://{h}/{'/'.join(p)}", st.sampled_from(["https", "http"]),
        host, path,
    )  # fmt: skip


_timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond - d.microsecond % 1000))


def _decimals(ge: Any = None, le: Any = None) -> st.SearchStrategy[Decimal]:
    low = Decimal(ge) if ge is not None else Decimal(-1_000_000)
    high = Decimal(le) if le is not None else Decimal(1_000_000)
    return st.integers(0, 4).flatmap(
        lambda places: st.decimals(
            min_value=low, max_value=high, places=places, allow_nan=False, allow_infinity=False
        )
    )


@dataclass(frozen=True)
class _Context:
    overrides: Overrides
    exclude: Collection[str] = field(default_factory=frozenset)

    def members(self, enum_cls: type[Enum]) -> st.SearchStrategy[Any]:
        return st.sampled_from([m for m in enum_cls if m.value not in self.exclude])


class _Constraints:
    def __init__(self, metadata: list[Any]) -> None:
        self.max_length: int | None = None
        self.min_length: int | None = None
        self.pattern: str | None = None
        self.ge: Any = None
        self.le: Any = None
        self.ascii = False
        self.url = False
        self.add(metadata)

    def add(self, metadata: list[Any]) -> None:
        for item in metadata:
            if isinstance(item, FieldInfo):
                self.add(list(item.metadata))
            elif isinstance(item, StringConstraints):
                self.max_length = (
                    item.max_length if item.max_length is not None else self.max_length
                )
                self.min_length = (
                    item.min_length if item.min_length is not None else self.min_length
                )
                self.pattern = item.pattern if isinstance(item.pattern, str) else self.pattern
            elif isinstance(item, annotated_types.MaxLen):
                self.max_length = item.max_length
            elif isinstance(item, annotated_types.MinLen):
                self.min_length = item.min_length
            elif isinstance(item, annotated_types.Ge):
                self.ge = item.ge
            elif isinstance(item, annotated_types.Le):
                self.le = item.le
            else:
                func = getattr(item, "func", None)
                name = getattr(func, "__name__", "")
                if name == "_check_printable_ascii":
                    self.ascii = True
                elif name == "_check_url":
                    self.url = True


def _strategy(tp: Any, c: _Constraints, ctx: _Context) -> st.SearchStrategy[Any]:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        base, *extra = get_args(tp)
        c.add(list(extra))
        return _strategy(base, c, ctx)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        enums = [a for a in members if isinstance(a, type) and issubclass(a, Enum)]
        if enums:  # an open enum, X | str: its known values
            return ctx.members(enums[0])
        if len(members) == 1:
            return _strategy(members[0], c, ctx)
        raise TypeError(f"no strategy for union {tp!r}")
    if origin is list:
        (item,) = get_args(tp)
        low = c.min_length or 0
        return st.lists(_strategy(item, _Constraints([]), ctx), min_size=low, max_size=low + 2)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _dicts(tp, ctx)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return ctx.members(tp)
    if tp is bool:
        return st.booleans()
    if tp is int:
        low = int(c.ge) if c.ge is not None else -(10**6)
        high = int(c.le) if c.le is not None else 10**6
        return st.integers(low, high)
    if tp is Decimal:
        return _decimals(c.ge, c.le)
    if tp is datetime:
        return _timestamps
    if tp is str:
        if c.url:
            return _urls()
        if c.pattern is not None:
            limit = c.max_length
            return st.from_regex(c.pattern, fullmatch=True).filter(
                lambda s: limit is None or len(s) <= limit
            )
        return _text(c.max_length, c.min_length or 0, ascii_only=c.ascii)
    raise TypeError(f"no strategy for {tp!r}")


def _dicts(model: type[BaseModel], ctx: _Context) -> st.SearchStrategy[dict[str, Any]]:
    overrides = ctx.overrides
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        if (model, name) in overrides:
            strategy = overrides[(model, name)]
        elif (None, name) in overrides:
            strategy = overrides[(None, name)]
        elif name in REALISTIC:
            strategy = REALISTIC[name]
        else:
            strategy = _strategy(info.annotation, _Constraints(list(info.metadata)), ctx)
        (required if info.is_required() else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def objects(
    model: type[M], overrides: Overrides | None = None, *, exclude: Collection[str] = ()
) -> st.SearchStrategy[M]:
    """Valid instances of ``model``."""
    return _dicts(model, _Context(overrides or {}, frozenset(exclude))).map(model.model_validate)

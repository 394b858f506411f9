"""Compact JSON text, as ``json.dumps(value, separators=(",", ":"))`` writes it.

``json.JSONEncoder.encode`` builds a new C encoder for each call it makes on a list or a
dict (``iterencode``), about half its time on the small values of a charger's answer or a
connector's record (issue 15). :func:`compact` calls one encoder built once: the same
text and the same TypeError for what JSON cannot hold; only a value that contains itself
raises RecursionError rather than json's ValueError (no value written here is such).

Imports nothing of the gateway.
"""

from __future__ import annotations

# The json module's C encoder (CPython's, which the gateway runs on), and its writers of a
# string.
from _json import make_encoder
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any


def _unserializable(value: Any) -> Any:
    # json.JSONEncoder.default's error.
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_encoder(ensure_ascii: bool) -> Callable[[Any], str]:
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring
    # No markers (no check for a value containing itself), default, how strings are
    # written, no indent, key and item separators, sort_keys, skipkeys, allow_nan: the
    # arguments json.JSONEncoder gives it.
    encoder = make_encoder(None, _unserializable, strings, None, ":", ",", False, False, True)

    def compact(value: Any) -> str:
        if isinstance(value, str):
            return strings(value)  # a top-level string: json's own shortcut
        return "".join(encoder(value, 0))

    return compact


# Stateless, so built once: non-ASCII characters escaped (``\u00e9``), and written as is.
compact: Callable[[Any], str] = _compact_encoder(ensure_ascii=True)
compact_unicode: Callable[[Any], str] = _compact_encoder(ensure_ascii=False)

"""Tracebacks in the log never carry raw control characters from input either: an
exception's message is escaped, the stack lines keep their line breaks."""

from __future__ import annotations

import io
import logging
import traceback

import pytest

from gateway import logsafe


def _log_with(exc_factory: type[Exception], message: str) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.logsafe.tb")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logsafe.install(logger)
        try:
            try:
                raise ValueError("inner\r\nINFO forged inner")
            except ValueError as inner:
                raise exc_factory(message) from inner
        except Exception:
            logger.exception("handler failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return out.getvalue()


def test_exception_messages_in_tracebacks_are_escaped() -> None:
    text = _log_with(KeyError, "EVIL\r\n2026-01-01 INFO forged line\x1b[31m")
    lines = text.splitlines()
    assert lines[0] == "ERROR handler failed"
    # No line of its own for the forged text: it stays inside the escaped message (and in
    # the source line of this test's own raise, which the stack shows as it is).
    assert not [line for line in lines if line.startswith("2026-01-01") or line.startswith("INFO forged")]
    assert "KeyError: 'EVIL\\r\\n2026-01-01 INFO forged line\\x1b[31m'" in lines
    assert "ValueError: inner\\x0d\\x0aINFO forged inner" in lines
    assert "The above exception was the direct cause of the following exception:" in lines
    assert sum(line == "Traceback (most recent call last):" for line in lines) == 2
    assert "\x1b" not in text and "\r" not in text


def _chained() -> None:
    try:
        raise ValueError("plain")
    except ValueError as exc:
        raise KeyError("also plain") from exc


def test_same_text_as_the_standard_traceback_when_nothing_needs_escaping() -> None:
    with pytest.raises(KeyError) as info:
        _chained()
    expected = "".join(traceback.format_exception(info.value)).rstrip("\n")
    assert logsafe.format_exception(info.value) == expected

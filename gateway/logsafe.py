"""Log records never carry raw control characters from input.

A charger id, message id or action with CR/LF would otherwise write a forged
log line (log injection), and a lone surrogate from a JSON ``\\ud800`` escape
would make the stream handler fail to encode the record. :func:`install` puts
:class:`EscapingFilter` on every handler of the root logger, so every record
that reaches a handler is escaped once, whatever logger it came from.
"""

from __future__ import annotations

import logging
import re
import traceback

# C0 and C1 controls, DEL, the Unicode line/paragraph separators, and surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character written as a visible escape."""
    return _UNSAFE.sub(_escape_char, text)


def format_exception(exc: BaseException) -> str:
    """A traceback as ``logging`` writes it, but with every exception's message (the part
    input can reach, e.g. ``KeyError('EVIL\\r\\n...')``) escaped; the stack lines are the
    program's own and keep their line breaks."""
    out: list[str] = []
    _format_chain(traceback.TracebackException.from_exception(exc), out, set())
    return "".join(out).rstrip("\n")


def _format_chain(te: traceback.TracebackException, out: list[str], seen: set[int]) -> None:
    seen.add(id(te))
    if te.__cause__ is not None and id(te.__cause__) not in seen:
        _format_chain(te.__cause__, out, seen)
        out.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif (
        te.__context__ is not None
        and not te.__suppress_context__
        and id(te.__context__) not in seen
    ):
        _format_chain(te.__context__, out, seen)
        out.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if te.stack:
        out.append("Traceback (most recent call last):\n")
        out.extend(te.stack.format())
    out.extend(escape(line.rstrip("\n")) + "\n" for line in te.format_exception_only())


class EscapingFilter(logging.Filter):
    """Formats the record's message once and stores the escaped text in its place; a
    traceback too (``exc_text``, which every formatter then uses as it is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = format_exception(record.exc_info[1])
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        safe = escape(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Escape control characters in everything the handlers of ``logger`` (root) write."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, EscapingFilter) for f in handler.filters):
            handler.addFilter(EscapingFilter())

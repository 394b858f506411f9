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

# C0 and C1 controls, DEL, the Unicode line/paragraph separators, and surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control character written as a visible escape."""
    return _UNSAFE.sub(_escape_char, text)


class EscapingFilter(logging.Filter):
    """Formats the record's message once and stores the escaped text in its place."""

    def filter(self, record: logging.LogRecord) -> bool:
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

"""Log lines as text or JSON, with what each line is about.

The edges set context variables: the OCPP endpoint the charger id (for the whole
connection: the tasks it starts inherit it), the connection's CALL worker the OCPP
transaction id of the CALL it handles, the OCPI server the X-Request-ID and
X-Correlation-ID of each request and the partner once its token is known, the push
worker the partner it delivers to. :class:`ContextFilter` copies them onto every
record a handler writes, whatever logger it came from; the formatters print them.

Escaping: :mod:`gateway.logsafe` escapes control characters in every message (both
formats); the context values come from input too and are escaped the same way in
text lines; in JSON lines ``json.dumps`` (ASCII only) escapes them, lone surrogates
included. Nothing here is module-level state but the context variables themselves
(which are per task by design). Imports: the standard library and ``gateway.logsafe``.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, TextIO

from gateway import logsafe

charger_id: ContextVar[str | None] = ContextVar("charger_id", default=None)
partner: ContextVar[str | None] = ContextVar("partner", default=None)
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
transaction_id: ContextVar[str | None] = ContextVar("transaction_id", default=None)

# Record attribute (and JSON field) -> its context variable.
FIELDS: Final = {
    "charger_id": charger_id,
    "partner": partner,
    "request_id": request_id,
    "correlation_id": correlation_id,
    "transaction_id": transaction_id,
}
FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


class ContextFilter(logging.Filter):
    """Puts the context variables on the record (``record.charger_id``...), and for text
    lines their escaped ``key=value`` list as ``record.context``. A value the record
    already carries (``extra={"charger_id": ...}``) wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        parts: list[str] = []
        for name, var in FIELDS.items():
            value = getattr(record, name, None)
            if value is None:
                value = var.get()
                setattr(record, name, value)
            if value is not None:
                parts.append(f"{name}={logsafe.escape(str(value))!s}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, RFC 3339), ``level``, ``logger``,
    ``message``, the context fields that are set, and ``exception`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info and record.exc_info[1] is not None:
            # Escaped here whatever another handler made of ``exc_text`` before.
            line["exception"] = logsafe.format_exception(record.exc_info[1])
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ASCII only: every control character, separator and lone surrogate is escaped.
        return json.dumps(line, ensure_ascii=True, default=str)


def make_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler writing ``log_format`` lines (``text`` or ``json``), with the
    context filter and the escaping filter."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    handler.addFilter(logsafe.EscapingFilter())
    return handler


def configure(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """The root logger's one handler (``ocpi-gateway serve`` calls this once)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(log_format, stream))
    root.setLevel(level.upper())

"""Which charge point ids the gateway accepts (WebSocket path and admin API alike).

OCPP 2.0.1 part 2, A00 (security) and OCPP-J 2.0.1 section 3.1.1: the charging
station identity is at most 48 characters, appears as the last path segment of
the connection URL and is the Basic auth user name. So it may not contain ``/``
(it would be two path segments), nor control characters (it ends up in logs and
headers); everything else printable is allowed, as before.
"""

from __future__ import annotations

MAX_CHARGER_ID = 48


def charger_id_problem(cp_id: str) -> str | None:
    """Why ``cp_id`` is not an acceptable charge point id, or None when it is."""
    if not 1 <= len(cp_id) <= MAX_CHARGER_ID:
        return f"charger id must be 1 to {MAX_CHARGER_ID} characters"
    if "/" in cp_id:
        return "charger id must not contain '/'"
    if not cp_id.isprintable():
        return "charger id must be printable (no control characters)"
    return None

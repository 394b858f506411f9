"""Plans pushes to partners as outbox items (delivered later by the outbox worker).

Ordering keys are per partner and per object, so a partner that is down delays
only its own pushes, and the updates of one object reach each partner in order.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.domain.clock import Clock, IdFactory
from gateway.roaming.outbox import make_item
from gateway.roaming.partners import PartnerRegistry
from gateway.storage.base import OutboxItem
from ocpi.transport import json_dumps


def wire_json(value: Any) -> Any:
    """A wire model (or dict of them) as plain JSON for the outbox.

    Decimals become JSON floats: the body is written back with the shortest repr
    of each float, which is the same number the Decimal had for the few digits
    OCPI money and quantities carry.
    """
    return json.loads(json_dumps(value))


class PushPlanner:
    def __init__(self, registry: PartnerRegistry, clock: Clock, ids: IdFactory) -> None:
        self._registry = registry
        self._clock = clock
        self._ids = ids

    def receivers(self, module: str) -> list[tuple[str, str]]:
        """(partner id, receiver URL) of every registered partner implementing ``module``."""
        out = []
        for partner in self._registry.registered():
            url = partner.endpoint(module, "RECEIVER")
            if url:
                out.append((partner.id, url.rstrip("/")))
        return out

    def item(
        self,
        partner_id: str,
        module: str,
        method: str,
        url: str,
        body: Any,
        object_key: str,
        meta: dict[str, Any] | None = None,
    ) -> OutboxItem:
        return make_item(
            self._ids,
            self._clock,
            partner_id,
            method,
            url,
            wire_json(body) if body is not None else None,
            ordering_key=f"{partner_id}|{module}|{object_key}",
            module=module,
            meta=meta,
        )

    def broadcast(
        self, module: str, method: str, path: str, body: Any, object_key: str
    ) -> list[OutboxItem]:
        """One item per partner implementing the ``module`` receiver; ``path`` is appended
        to its receiver URL (e.g. ``/NL/ABC/LOC1``)."""
        return [
            self.item(partner_id, module, method, base + path, body, object_key)
            for partner_id, base in self.receivers(module)
        ]

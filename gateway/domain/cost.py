"""What a transaction costs the driver so far (or in all, once ended): shown on the
chargers that display costs (OCPP 2.0.1 TariffCostCtrlr, use cases I02 and I03)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from gateway.domain.models import Transaction


@dataclass(frozen=True, slots=True)
class Cost:
    amount: Decimal  # including VAT, in ``currency``
    currency: str  # ISO 4217, the tariff's


class CostQuote(Protocol):
    """Prices a transaction with the tariff of its connector (the one it started with),
    as its CDR will be priced (implemented by the roaming side's tariff engine)."""

    async def cost(self, tx: Transaction) -> Cost | None:
        """None when no tariff applies (or it cannot price this transaction)."""
        ...

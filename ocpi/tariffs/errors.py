"""One exception tree for everything the pricer refuses.

Every error names the offending field as a path inside the document it came from
(``elements[2].price_components[0].price``, ``charging_periods[1].dimensions[0].volume``),
so an operator can find it in the JSON without reading code.
"""

from __future__ import annotations

from typing import Literal

Document = Literal["tariff", "cdr", "input"]


class TariffError(ValueError):
    """Base class: the input cannot be priced as OCPI says.

    ``field`` is the path of the offending field inside ``document`` ("tariff", "cdr", or
    "input" for the pricer's own arguments such as the time zone); ``reason`` is the bare
    explanation. ``str(error)`` gives both.
    """

    document: Document = "input"

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(
            f"{self.document} {field}: {reason}" if field else f"{self.document}: {reason}"
        )


class InvalidTariffError(TariffError):
    """The tariff is not a valid OCPI tariff (negative price, unknown dimension, ...)."""

    document = "tariff"


class InvalidCdrError(TariffError):
    """The CDR or session is not valid OCPI, or contradicts itself (overlapping periods, ...)."""

    document = "cdr"


class CurrencyMismatchError(InvalidCdrError):
    """The CDR is in another currency than the tariff: no price can be right."""


class TariffNotApplicableError(TariffError):
    """The tariff is not valid at the session start (OCPI 2.2.1 Tariff.start/end_date_time)."""

    document = "tariff"


class InvalidArgumentError(TariffError):
    """An argument of the pricer itself is wrong (unknown time zone, naive datetime, ...)."""

    document = "input"

"""OCPI tariff engine: pure pricing of charging sessions and CDRs.

Given an OCPI tariff (2.2.1, or 2.1.1 converted losslessly), the charging periods of a
session or CDR, its start and end and the location's time zone, it computes the OCPI CDR
totals and a breakdown saying which tariff element priced which part, following OCPI 2.2.1
mod_tariffs and mod_cdrs. No I/O (except the ``cli`` module, which reads files), no
network, no knowledge of ``gateway``: it imports only the standard library.

Typical use (compile once, price many)::

    compiled = compile_tariff(tariff_from_ocpi_dict(tariff_json))
    result = price_session(compiled, periods, start_date_time=start, end_date_time=end,
                           time_zone="Europe/Amsterdam", currency="EUR")
    result.totals.total_cost  # Price(excl_vat=Decimal('5.63'), incl_vat=Decimal('6.24'))

See docs/tariffs.md for the rules and the interpretation chosen where OCPI is silent.
"""

from ocpi.tariffs.errors import (
    CurrencyMismatchError,
    InvalidArgumentError,
    InvalidCdrError,
    InvalidTariffError,
    TariffError,
    TariffNotApplicableError,
)
from ocpi.tariffs.explain import format_explanation
from ocpi.tariffs.model import (
    Cdr,
    CdrDimension,
    CdrDimensionType,
    ChargingPeriod,
    DayOfWeek,
    Price,
    PriceComponent,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffElement,
    TariffRestrictions,
)
from ocpi.tariffs.parse import OcpiVersion, cdr_from_ocpi_dict, tariff_from_ocpi_dict
from ocpi.tariffs.pricer import (
    CompiledTariff,
    compile_tariff,
    price_cdr,
    price_session,
    tariff_is_active,
)
from ocpi.tariffs.result import (
    BreakdownLine,
    CdrTotals,
    LineKind,
    Part,
    PricingResult,
    money_places,
)

__all__ = [
    "BreakdownLine",
    "Cdr",
    "CdrDimension",
    "CdrDimensionType",
    "CdrTotals",
    "ChargingPeriod",
    "CompiledTariff",
    "CurrencyMismatchError",
    "DayOfWeek",
    "InvalidArgumentError",
    "InvalidCdrError",
    "InvalidTariffError",
    "LineKind",
    "OcpiVersion",
    "Part",
    "Price",
    "PriceComponent",
    "PricingResult",
    "ReservationRestriction",
    "Tariff",
    "TariffDimension",
    "TariffElement",
    "TariffError",
    "TariffNotApplicableError",
    "TariffRestrictions",
    "cdr_from_ocpi_dict",
    "compile_tariff",
    "format_explanation",
    "money_places",
    "price_cdr",
    "price_session",
    "tariff_from_ocpi_dict",
    "tariff_is_active",
]

"""OCPI 2.3.0 Payments module objects (mod_payments.asciidoc, new in 2.3.0).

Ad-hoc payment with payment terminals run by a Payment Terminal Provider (PTP, the data
owner). What a CPO exchanges:

* it receives :class:`Terminal` objects (PTP POSTs a new terminal to the CPO's Receiver
  interface, or the CPO GETs them from the PTP's Sender interface) and assigns Locations
  and EVSEs to a terminal with a PUT or a PATCH (:class:`TerminalPatch`) to the PTP;
* it may ask the PTP to activate a terminal built into a station (POST
  ``terminals/activate`` with a :class:`TerminalActivation`, whose ``terminal_id`` the
  PTP sets) or to deactivate one (POST ``terminals/{terminal_id}/deactivate``);
* a payment is a StartSession command from the PTP carrying an
  ``authorization_reference``; the Tariff's ``preauthorize_amount`` is what the PTP
  reserves; the CDR's ``invoice_reference_id`` says that the CPO made the invoice;
* it receives a :class:`FinancialAdviceConfirmation` (POST by the PTP) after the capture
  at the PSP, matched to the session by ``authorization_reference``, with the EFT data
  the CPO's invoice must show.

``Terminal`` fields are CiStrings in the spec text (address, city, ... included).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from ocpi.v230.enums import CaptureStatusCode, InvoiceCreator
from ocpi.v230.locations import GeoLocation
from ocpi.v230.types import (
    ASCII,
    URL,
    CiString36,
    CountryCode,
    DateTime,
    Max,
    OcpiModel,
    OcpiPatch,
    PartyIdStr,
    Price,
)

__all__ = [
    "CaptureStatusCode",
    "FinancialAdviceConfirmation",
    "InvoiceCreator",
    "Terminal",
    "TerminalActivation",
    "TerminalPatch",
]

CiString45 = Annotated[str, Max(45), ASCII]
CiString255 = Annotated[str, Max(255, min_length=1), ASCII]


class Terminal(OcpiModel):
    """One physical payment terminal and the Locations/EVSEs assigned to it."""

    terminal_id: CiString36
    customer_reference: CiString36 | None = None
    party_id: PartyIdStr | None = None
    country_code: CountryCode | None = None
    address: CiString45 | None = None
    city: CiString45 | None = None
    postal_code: Annotated[str, Max(10), ASCII] | None = None
    state: Annotated[str, Max(20), ASCII] | None = None
    country: Annotated[str, Max(3, min_length=3), ASCII] | None = None
    coordinates: GeoLocation | None = None
    invoice_base_url: URL | None = None
    invoice_creator: InvoiceCreator | None = None
    reference: CiString36 | None = None
    location_ids: list[CiString36] | None = None
    evse_uids: list[CiString36] | None = None
    last_updated: DateTime


class TerminalActivation(OcpiModel):
    """The body of POST ``terminals/activate``: a Terminal whose ``terminal_id`` is
    optional (the PTP sets it)."""

    terminal_id: CiString36 | None = None
    customer_reference: CiString36 | None = None
    party_id: PartyIdStr | None = None
    country_code: CountryCode | None = None
    address: CiString45 | None = None
    city: CiString45 | None = None
    postal_code: Annotated[str, Max(10), ASCII] | None = None
    state: Annotated[str, Max(20), ASCII] | None = None
    country: Annotated[str, Max(3, min_length=3), ASCII] | None = None
    coordinates: GeoLocation | None = None
    invoice_base_url: URL | None = None
    invoice_creator: InvoiceCreator | None = None
    reference: CiString36 | None = None
    location_ids: list[CiString36] | None = None
    evse_uids: list[CiString36] | None = None
    last_updated: DateTime


class TerminalPatch(OcpiPatch):
    """A PATCH of a Terminal (the CPO assigning ``location_ids``/``evse_uids``)."""

    identity_fields: ClassVar[tuple[str, ...]] = ("terminal_id",)

    terminal_id: CiString36 | None = None
    customer_reference: CiString36 | None = None
    address: CiString45 | None = None
    city: CiString45 | None = None
    postal_code: Annotated[str, Max(10), ASCII] | None = None
    state: Annotated[str, Max(20), ASCII] | None = None
    country: Annotated[str, Max(3, min_length=3), ASCII] | None = None
    coordinates: GeoLocation | None = None
    invoice_base_url: URL | None = None
    invoice_creator: InvoiceCreator | None = None
    reference: CiString36 | None = None
    location_ids: list[CiString36] | None = None
    evse_uids: list[CiString36] | None = None


class FinancialAdviceConfirmation(OcpiModel):
    """The result of the capture of an ad-hoc payment, sent by the PTP to the CPO;
    ``authorization_reference`` is the one of the StartSession command."""

    id: CiString36
    authorization_reference: CiString36
    total_costs: Price
    currency: Annotated[str, Max(3, min_length=3), ASCII]
    eft_data: Annotated[list[CiString255], Field(min_length=1)]
    capture_status_code: CaptureStatusCode
    capture_status_message: CiString255 | None = None
    last_updated: DateTime

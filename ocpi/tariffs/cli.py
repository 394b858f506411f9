"""``ocpi-gateway tariff ...``: price a CDR with a tariff from the command line.

``gateway.cli`` hands everything after the word ``tariff`` to :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ocpi.tariffs.errors import TariffError
from ocpi.tariffs.explain import format_explanation
from ocpi.tariffs.jsonio import dumps, loads
from ocpi.tariffs.parse import VERSIONS, OcpiVersion, cdr_from_ocpi_dict, tariff_from_ocpi_dict
from ocpi.tariffs.pricer import price_cdr

_EXIT_OK = 0
_EXIT_INVALID = 1  # the input cannot be priced; the message names the field
_EXIT_USAGE = 2  # argparse's own code for a bad command line


class _InputError(Exception):
    """A file that cannot be read or decoded."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocpi-gateway tariff",
        description="Price OCPI CDRs with OCPI tariffs, as OCPI 2.2.1 mod_tariffs/mod_cdrs say.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    price = sub.add_parser(
        "price",
        help="compute a CDR's totals from a tariff",
        description=(
            "Compute the OCPI CDR totals (total_cost, total_energy_cost, ...) of CDR.json "
            "under TARIFF.json and print them as JSON with the CDR's field names. Totals the "
            "CDR already carries are ignored. Exit status 1 and a message naming the field "
            "when the input is not valid OCPI."
        ),
    )
    price.add_argument("--tariff", required=True, metavar="TARIFF.json", help="OCPI Tariff object")
    price.add_argument("--cdr", required=True, metavar="CDR.json", help="OCPI CDR object")
    price.add_argument(
        "--time-zone",
        metavar="ZONE",
        help=(
            "IANA time zone of the location (e.g. Europe/Amsterdam), in which the tariff's "
            "times of day and days of the week are read. Default: the CDR location's "
            "time_zone (cdr_location.time_zone, or location.time_zone in 2.1.1); required "
            "when the CDR has none."
        ),
    )
    price.add_argument(
        "--ocpi-version",
        choices=VERSIONS,
        default="2.2.1",
        help="OCPI version of both files (default 2.2.1; 2.1.1 is converted losslessly)",
    )
    price.add_argument(
        "--reservation-expired",
        choices=("auto", "yes", "no"),
        default="auto",
        help=(
            "whether the reservation in the CDR expired unused (prices RESERVATION_EXPIRES "
            "elements). auto: expired when no charging period follows it"
        ),
    )
    price.add_argument(
        "--explain",
        action="store_true",
        help="print the breakdown (which element priced which part) as a table before the JSON",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ocpi-gateway tariff`` with ``argv`` (the arguments after ``tariff``)."""
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else _EXIT_USAGE
    if args.command != "price":
        parser.print_help(sys.stderr)
        return _EXIT_USAGE
    try:
        return _price(args)
    except _InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_INVALID
    except TariffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_INVALID
    except BrokenPipeError:
        # The reader (``| head``) went away: stop quietly, and keep Python's exit-time
        # flush of stdout from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return _EXIT_INVALID


def _price(args: argparse.Namespace) -> int:
    version: OcpiVersion = args.ocpi_version
    tariff = tariff_from_ocpi_dict(_read_object(args.tariff, "tariff"), version=version)
    cdr = cdr_from_ocpi_dict(_read_object(args.cdr, "CDR"), version=version)
    zone = args.time_zone or cdr.time_zone
    if zone is None:
        print(
            "error: the CDR's location has no time_zone; pass --time-zone with the "
            "location's IANA zone (e.g. Europe/Amsterdam)",
            file=sys.stderr,
        )
        return _EXIT_INVALID
    expired = {"auto": None, "yes": True, "no": False}[args.reservation_expired]
    result = price_cdr(tariff, cdr, time_zone=zone, reservation_expired=expired)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.explain:
        sys.stdout.write(format_explanation(result))
        sys.stdout.write("\n")
    document: dict[str, Any] = {"currency": result.currency}
    document.update(result.totals.to_ocpi_dict())
    sys.stdout.write(dumps(document) + "\n")
    return _EXIT_OK


def _read_object(path: str, what: str) -> Mapping[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _InputError(f"cannot read the {what} file {path}: {exc}") from exc
    try:
        data = loads(text)
    except ValueError as exc:
        raise _InputError(f"the {what} file {path} is not valid JSON: {exc}") from exc
    # Accept an OCPI response envelope ({"data": {...}, "status_code": 1000, ...}) too.
    if (
        isinstance(data, Mapping)
        and "status_code" in data
        and isinstance(data.get("data"), Mapping)
    ):
        data = data["data"]
    if not isinstance(data, Mapping):
        raise _InputError(f"the {what} file {path} must hold one JSON object")
    return data

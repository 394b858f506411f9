"""``ocpi-gateway tariff price`` run as a real subprocess of the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tariff_helpers import load_cases

from ocpi.tariffs.jsonio import dumps
from ocpi.tariffs.result import QUANTITY_PLACES, round_half_up

SCRIPT = Path(sys.executable).with_name("ocpi-gateway")
CASES = {case["name"]: case for case in load_cases()}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the project (pip install -e .)")
    return subprocess.run(
        [str(SCRIPT), "tariff", *args], capture_output=True, text=True, timeout=60, check=False
    )


def write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / name
    path.write_text(dumps(document), encoding="utf-8")  # Decimals as JSON numbers
    return str(path)


def files(tmp_path: Path, case_name: str, **cdr_changes: Any) -> tuple[str, str]:
    case = CASES[case_name]
    cdr = {**case["cdr"], **cdr_changes}
    return write(tmp_path, "tariff.json", case["tariff"]), write(tmp_path, "cdr.json", cdr)


def _expected_money(value: Any) -> Decimal:
    return round_half_up(Decimal(str(value)), 2)


def test_price_prints_the_totals_as_ocpi_json(tmp_path: Path) -> None:
    name = "ocpi-spec/tariff_4_complex/monday_0930_165min_16A_42min_parking"
    tariff, cdr = files(tmp_path, name)
    done = run("price", "--tariff", tariff, "--cdr", cdr, "--time-zone", "UTC")
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout, parse_float=Decimal)
    expected = CASES[name]["expected"]
    for field, value in expected.items():
        for limb, amount in value.items():
            assert totals[field][limb] == _expected_money(amount), (field, limb)
    assert totals["currency"] == "EUR"
    assert set(totals) >= {
        "total_cost",
        "total_fixed_cost",
        "total_energy",
        "total_energy_cost",
        "total_time",
        "total_time_cost",
        "total_parking_time",
        "total_parking_cost",
        "total_reservation_cost",
    }


def test_time_zone_defaults_to_the_cdr_location(tmp_path: Path) -> None:
    name = "hamza-nabil/v2_2_1/codeberg_issue_228"
    case = CASES[name]
    location = {**case["cdr"]["cdr_location"], "time_zone": case["time_zone"]}
    tariff, cdr = files(tmp_path, name, cdr_location=location)
    done = run("price", "--tariff", tariff, "--cdr", cdr)
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout, parse_float=Decimal)
    assert totals["total_cost"]["excl_vat"] == _expected_money(
        case["expected"]["total_cost"]["excl_vat"]
    )
    assert totals["total_time"] == round_half_up(
        Decimal(str(case["expected"]["total_time"])), QUANTITY_PLACES
    )
    # The CDR's first period starts before its start_date_time: priced, with a warning.
    assert "warning: charging_periods[0] starts at" in done.stderr

    # The same CDR without a zone: refused, and the message says what to pass.
    tariff, cdr = files(tmp_path, name)
    done = run("price", "--tariff", tariff, "--cdr", cdr)
    assert done.returncode == 1
    assert "--time-zone" in done.stderr
    assert done.stdout == ""


def test_explain_prints_the_breakdown_then_the_json(tmp_path: Path) -> None:
    name = "hamza-nabil/v2_2_1/codeberg_issue_228"
    tariff, cdr = files(tmp_path, name)
    done = run(
        "price", "--tariff", tariff, "--cdr", cdr, "--time-zone", "Europe/Amsterdam", "--explain"
    )
    assert done.returncode == 0, done.stderr
    table, _, tail = done.stdout.partition("\n{")
    # Local 14:00 and 15:00 CEST pick elements 14 and 15 of the hourly tariff.
    assert "2025-08-20 14:00:00 CEST" in table
    assert "e14.c0" in table
    assert "e15.c0" in table
    assert "total_cost" in table
    json.loads("{" + tail)


def test_ocpi_211_files(tmp_path: Path) -> None:
    name = "hamza-nabil/v2_1_1/045kwh_start_parking_min_duration"
    case = CASES[name]
    tariff, cdr = files(tmp_path, name)
    done = run(
        "price", "--tariff", tariff, "--cdr", cdr, "--time-zone", "UTC", "--ocpi-version", "2.1.1"
    )
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout, parse_float=Decimal)
    assert totals["total_cost"]["excl_vat"] == _expected_money(
        case["expected"]["total_cost"]["excl_vat"]
    )


def test_invalid_input_names_the_field_and_fails(tmp_path: Path) -> None:
    case = CASES["ocpi-spec/tariff_8_simple_025kwh/20kwh"]
    bad = json.loads(dumps(case["tariff"]), parse_float=Decimal)
    bad["elements"][0]["price_components"][0]["price"] = Decimal("-0.25")
    tariff = write(tmp_path, "bad.json", bad)
    cdr = write(tmp_path, "cdr.json", case["cdr"])
    done = run("price", "--tariff", tariff, "--cdr", cdr, "--time-zone", "UTC")
    assert done.returncode == 1
    assert "elements[0].price_components[0].price" in done.stderr
    assert "negative" in done.stderr
    assert done.stdout == ""

    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json", encoding="utf-8")
    done = run("price", "--tariff", str(garbled), "--cdr", cdr, "--time-zone", "UTC")
    assert done.returncode == 1
    assert "not valid JSON" in done.stderr

    done = run(
        "price", "--tariff", str(tmp_path / "missing.json"), "--cdr", cdr, "--time-zone", "UTC"
    )
    assert done.returncode == 1
    assert "cannot read" in done.stderr

    good = write(tmp_path, "good.json", case["tariff"])
    done = run("price", "--tariff", good, "--cdr", cdr, "--time-zone", "Nowhere/Town")
    assert done.returncode == 1
    assert "time_zone" in done.stderr
    assert "Nowhere/Town" in done.stderr


def test_usage() -> None:
    done = run("price", "--help")
    assert done.returncode == 0
    assert "--time-zone" in done.stdout
    assert "cdr_location.time_zone" in done.stdout
    assert run("price").returncode == 2  # --tariff and --cdr are required
    assert run().returncode == 2


def test_the_worked_example_of_the_docs(tmp_path: Path) -> None:
    """docs/tariffs.md's worked example: its CDR, the spec's complex tariff, its table."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "tariffs.md").read_text(encoding="utf-8")
    example = doc[doc.index("## Worked example") :]
    cdr_json = example.split("```json\n", 1)[1].split("```", 1)[0]
    shown = example.split("--explain\n", 1)[1].split("```", 1)[0]
    case = CASES["ocpi-spec/tariff_4_complex/saturday_1330_114min_43A_71min_parking"]
    tariff = write(tmp_path, "tariff.json", case["tariff"])
    cdr = tmp_path / "cdr.json"
    cdr.write_text(cdr_json, encoding="utf-8")
    done = run("price", "--tariff", tariff, "--cdr", str(cdr), "--explain")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(shown.rstrip("\n"))
    totals = json.loads("{" + done.stdout.partition("\n{")[2], parse_float=Decimal)
    # The docs' reading: 2.50 fee; 1.9 h at 1.25; 96 billable parking minutes rounded up
    # to 100 at 6.00/h; VAT 15 %, 20 %, 10 %.
    parking = Decimal(100) / 60 * Decimal("6.00")
    excl = Decimal("2.50") + Decimal("1.9") * Decimal("1.25") + parking
    incl = (
        Decimal("2.50") * Decimal("1.15")
        + Decimal("1.9") * Decimal("1.25") * Decimal("1.2")
        + parking * Decimal("1.1")
    )
    assert totals["total_cost"] == {
        "excl_vat": round_half_up(excl, 2),
        "incl_vat": round_half_up(incl, 2),
    }

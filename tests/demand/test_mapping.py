"""OpenADR events to site limits (gateway.demand.mapping): a table per signal, and
properties over arbitrary events (a limit is a share of capacity in [0, 1] or a power
>= 0, within its interval, for a known site; nothing else ever comes out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.demand.mapping import OPEN_ENDED, DemandLimit, decide

T0 = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
SITES = ["depot", "office"]


def event(
    *signals: dict[str, Any],
    event_id: str = "ev-1",
    status: str = "far",
    targets: dict[str, list[str]] | None = None,
    duration: timedelta | None = timedelta(hours=1),
) -> dict[str, Any]:
    return {
        "event_descriptor": {"event_id": event_id, "modification_number": 0, "event_status": status},
        "active_period": {"dtstart": T0, "duration": duration},
        "event_signals": list(signals),
        "targets_by_type": targets or {"ven_id": ["ven-1"]},
        "response_required": "always",
    }


def signal(name: str, kind: str, *payloads: float, measurement: dict[str, Any] | None = None) -> dict[str, Any]:
    intervals = [
        {"dtstart": T0 + timedelta(minutes=15 * i), "duration": timedelta(minutes=15), "uid": i, "signal_payload": p}
        for i, p in enumerate(payloads)
    ]
    out: dict[str, Any] = {"signal_name": name, "signal_type": kind, "intervals": intervals}
    if measurement is not None:
        out["measurement"] = measurement
    return out


@pytest.mark.parametrize(
    ("sig", "expected"),
    [
        (signal("SIMPLE", "level", 1), {"fraction": Decimal("0.75")}),
        (signal("simple", "level", 3), {"fraction": Decimal("0.25")}),
        (signal("LOAD_CONTROL", "x-loadControlCapacity", 0.4), {"fraction": Decimal("0.4")}),
        (signal("LOAD_CONTROL", "x-loadControlCapacity", 1.7), {"fraction": Decimal(1)}),
        (signal("LOAD_CONTROL", "x-loadControlPercentOffset", -30), {"fraction": Decimal("0.7")}),
        (signal("LOAD_CONTROL", "x-loadControlSetpoint", 22, measurement={"scale": "k"}), {"watts": Decimal(22000)}),
        (signal("LOAD_DISPATCH", "setpoint", 0.5, measurement={"scale": "M"}), {"watts": Decimal(500000)}),
        (signal("LOAD_DISPATCH", "setpoint", 7000), {"watts": Decimal(7000)}),
    ],
)
def test_each_signal_becomes_a_limit_on_every_site(sig: dict[str, Any], expected: dict[str, Decimal]) -> None:
    decision = decide(event(sig), SITES)
    assert decision.opt == "optIn"
    assert [(lim.site_id, lim.start, lim.end) for lim in decision.limits] == [
        ("depot", T0, T0 + timedelta(minutes=15)),
        ("office", T0, T0 + timedelta(minutes=15)),
    ]
    for lim in decision.limits:
        assert {"fraction": lim.fraction, "watts": lim.watts} == {"fraction": None, "watts": None} | expected


def test_simple_level_zero_is_no_limit_and_levels_are_a_setting() -> None:
    decision = decide(event(signal("SIMPLE", "level", 0, 2)), ["depot"], simple_levels=(Decimal("0.9"), Decimal("0.6")))
    [limit] = decision.limits
    assert (limit.start, limit.fraction) == (T0 + timedelta(minutes=15), Decimal("0.6"))


def test_targets_name_sites_and_unknown_sites_opt_out() -> None:
    only_depot = decide(event(signal("SIMPLE", "level", 1), targets={"resource_id": ["depot", "elsewhere"]}), SITES)
    assert {lim.site_id for lim in only_depot.limits} == {"depot"}
    group = decide(event(signal("SIMPLE", "level", 1), targets={"group_id": ["office"]}), SITES)
    assert {lim.site_id for lim in group.limits} == {"office"}
    nowhere = decide(event(signal("SIMPLE", "level", 1), targets={"resource_id": ["elsewhere"]}), SITES)
    assert (nowhere.opt, nowhere.limits) == ("optOut", ())
    assert "no site" in nowhere.reason


def test_an_unsupported_signal_opts_out_and_a_cancelled_event_is_lifted() -> None:
    prices = decide(event(signal("ELECTRICITY_PRICE", "price", 0.31)), SITES)
    assert prices.opt == "optOut" and "ELECTRICITY_PRICE/price" in prices.reason
    mixed = decide(event(signal("ELECTRICITY_PRICE", "price", 0.31), signal("SIMPLE", "level", 2)), SITES)
    assert mixed.opt == "optIn" and len(mixed.limits) == 2  # what it can follow, it follows
    cancelled = decide(event(signal("SIMPLE", "level", 1), status="cancelled"), SITES)
    assert cancelled.cancelled and cancelled.limits == () and cancelled.opt == "optIn"
    assert decide({"event_descriptor": {}}, SITES).opt == "optOut"


def test_an_interval_without_duration_lasts_to_the_events_end_and_an_event_without_one_is_bounded() -> None:
    sig = {"signal_name": "SIMPLE", "signal_type": "level", "intervals": [{"signal_payload": 1}]}
    [limit] = decide(event(sig), ["depot"]).limits
    assert (limit.start, limit.end) == (T0, T0 + timedelta(hours=1))
    [open_ended] = decide(event(sig, duration=None), ["depot"]).limits
    assert open_ended.end == T0 + OPEN_ENDED


payloads = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
)
signals = st.fixed_dictionaries(
    {
        "signal_name": st.sampled_from(["SIMPLE", "LOAD_CONTROL", "LOAD_DISPATCH", "ELECTRICITY_PRICE", "x"]),
        "signal_type": st.sampled_from(["level", "x-loadControlCapacity", "x-loadControlPercentOffset", "x-loadControlSetpoint", "setpoint", "price"]),
        "intervals": st.lists(
            st.fixed_dictionaries(
                {"signal_payload": payloads},
                optional={"duration": st.timedeltas(timedelta(0), timedelta(days=2)), "dtstart": st.datetimes(timezones=st.just(UTC))},
            ),
            max_size=4,
        ),
    },
    optional={"measurement": st.fixed_dictionaries({"scale": st.sampled_from(["none", "k", "M", "?"])})},
)


@given(
    st.lists(signals, max_size=3),
    st.sampled_from(["far", "near", "active", "cancelled", "completed"]),
    st.dictionaries(st.sampled_from(["ven_id", "resource_id", "group_id"]), st.lists(st.sampled_from(["depot", "office", "x"]), max_size=2), max_size=2),
)
def test_every_limit_is_sane(sigs: list[dict[str, Any]], status: str, targets: dict[str, list[str]]) -> None:
    decision = decide(event(*sigs, status=status, targets=targets), SITES)
    assert decision.opt in ("optIn", "optOut")
    for limit in decision.limits:
        assert isinstance(limit, DemandLimit)
        assert limit.site_id in SITES and limit.event_id == "ev-1"
        assert limit.end > limit.start
        assert (limit.fraction is None) != (limit.watts is None)
        if limit.fraction is not None:
            assert Decimal(0) <= limit.fraction <= Decimal(1)
        if limit.watts is not None:
            assert limit.watts >= 0 and limit.watts.is_finite()

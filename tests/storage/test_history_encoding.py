"""The status history's row encoding (``history.encode_row``): the same time key, the same
stored text and the same refusals as the general path it shortens
(``codec.time_key`` and ``codec.dumps(history.encode(entry))``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.models import ConnectorStatus
from gateway.storage import codec, history
from gateway.storage.base import StatusEntry, StatusKind

_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)), None])
_TIMES = st.builds(
    lambda at, zone: at.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    _ZONES,
)
_INTS = st.one_of(
    st.none(),
    st.integers(-(2**64), 2**64),
    st.booleans(),
    st.just(1.0),
    st.just("1"),
)
_TEXT = st.one_of(st.none(), st.text(), st.just("\ud800"), st.just(3))
_STATUSES = st.one_of(
    st.none(), st.sampled_from([s.value for s in ConnectorStatus]), st.text(max_size=3), st.just(1)
)
_KINDS = st.one_of(
    st.sampled_from(list(StatusKind)),
    st.sampled_from([k.value for k in StatusKind]),
    st.just("nope"),
    st.just(["connector"]),
)
_IDS = st.one_of(st.text(), st.just(""), st.just(7))


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:  # the same exception, type and text, is what is compared
        return type(exc).__name__, str(exc)


@given(
    charger_id=_IDS,
    at=_TIMES,
    kind=_KINDS,
    evse=_INTS,
    connector=_INTS,
    status=_STATUSES,
    error=_TEXT,
    detail=_TEXT,
)
def test_a_row_is_what_the_general_path_writes(
    charger_id: Any,
    at: datetime,
    kind: Any,
    evse: Any,
    connector: Any,
    status: Any,
    error: Any,
    detail: Any,
) -> None:
    entry = StatusEntry(charger_id, at, kind, evse, connector, status, error, detail)
    general = _outcome(
        lambda: (codec.time_key(entry.at, "StatusEntry.at"), codec.dumps(history.encode(entry)))
    )
    assert _outcome(lambda: history.encode_row(entry)) == general


_AWARE = st.builds(
    lambda at, zone: at.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(minutes=-330))]),
)
_SMALL = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))


@given(
    charger_id=st.text(min_size=1),
    at=_AWARE,
    kind=st.sampled_from(list(StatusKind)),
    evse=_SMALL,
    connector=_SMALL,
    status=st.one_of(st.none(), st.sampled_from([s.value for s in ConnectorStatus])),
    error=st.one_of(st.none(), st.text()),
    detail=st.one_of(st.none(), st.text()),
)
def test_the_entries_a_fleet_sends_are_written_as_the_general_path_writes_them(
    charger_id: str,
    at: datetime,
    kind: StatusKind,
    evse: int | None,
    connector: int | None,
    status: str | None,
    error: str | None,
    detail: str | None,
) -> None:
    # Plain types, as the recorder makes them: the short path's own cases (the test
    # above mostly reaches the general path).
    entry = StatusEntry(charger_id, at, kind, evse, connector, status, error, detail)
    general = _outcome(
        lambda: (codec.time_key(entry.at, "StatusEntry.at"), codec.dumps(history.encode(entry)))
    )
    assert _outcome(lambda: history.encode_row(entry)) == general


def test_a_plain_connector_entry_is_written_as_before() -> None:
    entry = StatusEntry(
        "CP-é",
        datetime(2026, 12, 5, 10, tzinfo=UTC),
        StatusKind.CONNECTOR,
        1,
        2,
        "Faulted",
        "GroundFailure",
        'a "quoted" detail',
    )
    key, text = history.encode_row(entry)
    assert key == 1_796_464_800_000_000
    assert text == (
        '{"charger_id":"CP-\\u00e9","at":"2026-12-05T10:00:00.000000Z","kind":"connector",'
        '"evse_id":1,"connector_id":2,"status":"Faulted","error_code":"GroundFailure",'
        '"detail":"a \\"quoted\\" detail"}'
    )
    assert history.decode(codec.loads(text)) == entry

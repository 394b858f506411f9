"""Odd but schema-valid numbers from chargers (the OCPP fuzz test found both): the status
history keeps the good entries of a batch and drops the one no report could hold, and a
report's completeness is counted, never built as a range of its last part number."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.domain.device_model import ReportStatus
from gateway.domain.events import ConnectorStatusChanged
from gateway.domain.models import ConnectorState, ConnectorStatus
from gateway.reports.recorder import StatusRecorder
from gateway.storage.factory import open_store
from tests.conftest import FakeClock

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


async def test_an_entry_the_store_refuses_is_dropped_alone(tmp_path: Path) -> None:
    store = await open_store(data_dir=tmp_path, redis_url=None)
    try:
        recorder = StatusRecorder(store.status_history, FakeClock(T0))
        for connector_id in (1, -1e308, 2):  # a float the schema calls an integer
            state = ConnectorState("CP", 1, connector_id, ConnectorStatus.FAULTED, T0)  # type: ignore[arg-type]
            recorder.record(ConnectorStatusChanged(state))
        await recorder.flush()
        stored = await store.status_history.list("CP")
        assert [e.connector_id for e in stored] == [1, 2]
        assert recorder.dropped == 1
    finally:
        await store.close()


def test_completeness_is_counted() -> None:
    assert ReportStatus("CP", 1, seq_nos=frozenset({0, 1, 2}), last_seq_no=2).complete
    assert not ReportStatus("CP", 1, seq_nos=frozenset({0, 2}), last_seq_no=2).complete
    assert not ReportStatus("CP", 1, seq_nos=frozenset({0, 2**40}), last_seq_no=2**40).complete
    assert not ReportStatus("CP", 1, seq_nos=frozenset({1, 2, 3}), last_seq_no=2).complete
    assert not ReportStatus("CP", 1, seq_nos=frozenset({0}), last_seq_no=None).complete

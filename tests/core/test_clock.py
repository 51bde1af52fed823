from datetime import UTC, datetime, timedelta, timezone

from allcare.core.clock import aware, utc_time, wire_time


def test_a_naive_timestamp_means_local_time_and_an_offset_is_kept() -> None:
    naive = datetime(2026, 11, 1, 9, 30)
    assert aware(naive) == naive.astimezone()
    assert aware(naive).utcoffset() == naive.astimezone().utcoffset()
    plus_two = datetime(2026, 11, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    assert aware(plus_two) is plus_two


def test_wire_times_are_local_without_offset_and_exports_are_utc_with_offset() -> None:
    moment = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    assert wire_time(moment) == moment.astimezone().replace(tzinfo=None).isoformat(
        timespec="microseconds"
    )
    assert utc_time(moment) == "2026-11-01T07:30:00.000000+00:00"
    assert wire_time(None) is None
    assert utc_time(None) is None

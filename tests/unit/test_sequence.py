"""The report sequence: above every value handed out before a restart, written to disk rarely."""

from __future__ import annotations

from nodeagent.wire.sequence import RESERVE_MS, Sequence


def test_a_restarted_sequence_starts_above_every_value_handed_out(tmp_path):
    path = tmp_path / "sequence"
    first = Sequence(path)
    values = [first.next() for _ in range(5)]
    assert values == sorted(set(values))
    again = Sequence(path)  # a restart, the clock where it was (or behind: the mark is ahead of it)
    assert again.next() > max(values)
    assert int(path.read_text()) > max(values)


def test_the_mark_is_written_once_per_reserve_not_per_value(tmp_path):
    path = tmp_path / "sequence"
    sequence = Sequence(path)
    sequence.next()
    written = path.stat().st_mtime_ns, path.read_text()
    for _ in range(100):
        sequence.next()
    assert (path.stat().st_mtime_ns, path.read_text()) == written
    assert int(written[1]) - sequence.value < RESERVE_MS


def test_an_older_agents_file_holding_its_last_value_is_a_floor(tmp_path):
    path = tmp_path / "sequence"
    path.write_text(str(10**15))  # far above the clock: what an agent before the mark wrote
    assert Sequence(path).next() == 10**15 + 1
    assert int(path.read_text()) == 10**15 + 1 + RESERVE_MS

"""The report sequence (wire/sequence.py): always up, across restarts, with its file written ahead."""

from nodeagent.wire.sequence import RESERVE, Sequence


def test_values_rise_and_a_restart_starts_above_every_value_used(tmp_path):
    path = tmp_path / "sequence"
    first = Sequence(path)
    used = [first.next() for _ in range(50)]
    assert used == sorted(set(used))
    written = int(path.read_text())
    assert written == used[0] + RESERVE  # one write for the burst, ahead of the values it covers
    again = Sequence(path)  # a restart
    assert again.next() > max(used) and again.next() > written


def test_the_file_is_written_again_once_the_values_reach_it(tmp_path):
    path = tmp_path / "sequence"
    path.write_text(str(10 ** 15))  # a ceiling far ahead of the clock: values count up from it
    sequence = Sequence(path)
    assert sequence.next() == 10 ** 15 + 1
    assert int(path.read_text()) == 10 ** 15 + 1 + RESERVE


def test_a_lost_or_garbled_file_falls_back_to_the_clock(tmp_path):
    path = tmp_path / "sequence"
    path.write_text("not a number")
    assert Sequence(path).next() > 1_600_000_000_000  # milliseconds since 1970, 2020 on

"""Reads shared within a reconcile pass (kit/passcache): once per pass, afresh after forget() and outside."""

import threading

from nodeagent.kit import passcache


def counting():
    reads = []

    def read():
        reads.append(1)
        return len(reads)

    return reads, read


def test_a_pass_reads_once_until_forget():
    reads, read = counting()
    with passcache.one_pass():
        assert passcache.once("links", read) == 1
        assert passcache.once("links", read) == 1
        passcache.forget()
        assert passcache.once("links", read) == 2
        with passcache.one_pass():  # inside a pass: the same pass
            assert passcache.once("links", read) == 2
        assert passcache.once("links", read) == 2
    assert len(reads) == 2


def test_outside_a_pass_every_read_is_made():
    reads, read = counting()
    assert [passcache.once("links", read) for _ in range(3)] == [1, 2, 3]
    with passcache.one_pass():
        passcache.once("links", read)
    assert passcache.once("links", read) == 5  # the pass ended: nothing kept


def test_a_failed_read_is_not_kept():
    reads, read = counting()

    def failing():
        raise OSError("gone")

    with passcache.one_pass():
        try:
            passcache.once("links", failing)
        except OSError:
            pass
        assert passcache.once("links", read) == 1


def test_passes_are_per_thread():
    reads, read = counting()
    seen = []
    with passcache.one_pass():
        passcache.once("links", read)
        thread = threading.Thread(target=lambda: seen.append(passcache.once("links", read)))
        thread.start()
        thread.join()
    assert seen == [2]

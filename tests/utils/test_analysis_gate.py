"""The analysis gate: never more analyses at once than its slots, first come first served, waiting users told."""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers.data import synth_music, wav_bytes
from utils import analysis_gate, settings
from utils.analysis_gate import AnalysisGate, queued_message


def test_twelve_queued_analyses_run_two_at_a_time_in_arrival_order() -> None:
    gate = AnalysisGate(2)
    inside, order, told = [0], [], {}
    lock = threading.Lock()

    def analyse(i: int) -> None:
        with gate.slot(lambda message, i=i: told.setdefault(i, message)):
            with lock:
                inside[0] += 1
                assert inside[0] <= 2
                order.append(i)
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    with gate.slot(), gate.slot():  # both slots taken: everyone who follows queues, in a known order
        threads = []
        for i in range(12):
            threads.append(threading.Thread(target=analyse, args=(i,)))
            threads[-1].start()
            deadline = time.monotonic() + 10
            while gate.waiting < i + 1 and time.monotonic() < deadline:  # i is queued before i + 1 starts
                time.sleep(0.001)
        assert gate.waiting == 12 and order == []
    for t in threads:
        t.join(30)
    assert sorted(order) == list(range(12)) and gate.peak_running == 2
    # admitted first come, first served; two run at once, so neighbours may record themselves swapped
    assert max(abs(pos - i) for pos, i in enumerate(order)) <= 1, order
    assert (gate.running, gate.waiting) == (0, 0)
    assert "Busy, queued: 2 other uploads are being analysed and 5 more are waiting ahead of it" in told[5]
    assert told[0].endswith("it is next; it starts by itself.")


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    gate = AnalysisGate(1)

    class RerunError(Exception):
        pass

    def impatient(_message: str) -> None:
        raise RerunError  # what a Streamlit rerun does inside a progress callback

    with gate.slot():
        with pytest.raises(RerunError), gate.slot(impatient):
            pass
        assert gate.waiting == 0
    with gate.slot():  # the slot is free again, nobody is stuck in front
        assert gate.running == 1


def test_messages_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert queued_message(0, 2) == ("Busy, queued: 2 other uploads are being analysed and it is next; "
                                    "it starts by itself.")
    assert "1 other upload is being analysed and 1 more is waiting" in queued_message(1, 1)
    for raw, want in (("4", 4), ("0", 2), ("lots", 2)):
        monkeypatch.setenv(settings.MAX_ANALYSES_ENV, raw)
        assert analysis_gate.max_analyses() == want
    with pytest.raises(ValueError):
        AnalysisGate(0)


def test_the_engine_waits_behind_a_full_gate_says_so_and_cache_hits_never_wait(
    random_engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = AnalysisGate(1)
    monkeypatch.setattr(analysis_gate, "_gate", gate)
    audio, messages, done = wav_bytes(synth_music(16.0, seed=3), 22050), [], []

    def user() -> None:
        done.append(random_engine.analyze(audio, filename="queued.wav", progress=lambda _f, m: messages.append(m)))

    with gate.slot():  # another upload is being analysed
        worker = threading.Thread(target=user)
        worker.start()
        deadline = time.monotonic() + 10
        while not messages and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert messages == [queued_message(0, 1)] and not done  # told at once, then it waits
    worker.join(60)
    assert done[0].name == "queued.wav" and messages[1] == "Decoding audio" and messages[-1] == "Done"
    assert done[0].timings_s["decode_resample"] < 5  # the wait is not counted as decoding
    with gate.slot():  # full again, but the same bytes are a cache hit
        assert random_engine.analyze(audio, filename="again.wav").name == "again.wav"

"""The lag probe (worker/lag.py) with a stand-in broker client: what it reports, what it forgets after a
rebalance, what it keeps when the broker does not answer, and that the loop never waits for it."""

from __future__ import annotations

import logging
import threading

from worker.lag import LagProbe, Snapshot, lags
from worker.metrics import new_metrics

A0, A1, B0 = ("a", 0), ("a", 1), ("b", 0)


class StandInOffsets:
    """End offsets and commits as a test sets them; `hold` makes end_offsets() wait until released."""

    def __init__(self, ends: dict, committed: dict | None = None) -> None:
        self.ends, self.commits = ends, committed or {}
        self.error: Exception | None = None
        self.hold = threading.Event()
        self.hold.set()
        self.asking = threading.Event()
        self.asked: list[list] = []
        self.closed = False

    def end_offsets(self, partitions: list) -> dict:
        self.asked.append(list(partitions))
        self.asking.set()
        self.hold.wait(60)
        if self.error is not None:
            raise self.error
        return {tp: self.ends[tp] for tp in partitions if tp in self.ends}

    def committed(self, partitions: list) -> dict:
        return {tp: self.commits[tp] for tp in partitions if tp in self.commits}

    def close(self) -> None:
        self.closed = True


def gauge(registry, tp: tuple[str, int]) -> float | None:
    return registry.get_sample_value(
        "anomaly_worker_consumer_lag_records", {"topic": tp[0], "partition": str(tp[1])}
    )


def probe_with(client: StandInOffsets, every_s: float = 3600.0):
    metrics, registry = new_metrics()
    return LagProbe(metrics, lambda: client, every_s=every_s), registry


def positions(values: dict):
    return lambda topic, partition: values.get((topic, partition))


def test_lag_is_end_minus_position_never_negative_and_from_the_commit_before_the_first_record() -> None:
    snapshot = Snapshot(frozenset({A0, A1, B0}), {A0: 40, A1: 90})
    ends = {A0: 100, A1: 80, B0: 70}
    assert lags(snapshot, ends, committed={B0: 25}) == {A0: 60, A1: 0, B0: 45}
    # Neither a position nor a commit, or no end offset: nothing to say about the partition.
    assert lags(snapshot, {A0: 100}, committed={}) == {A0: 60}


def test_the_probe_reports_the_broker_figure_for_the_assigned_partitions() -> None:
    client = StandInOffsets({A0: 1000, A1: 500, B0: 9})
    probe, registry = probe_with(client)
    probe.assigned({A0, A1})
    probe.update(positions({A0: 100, A1: 500, B0: 3}))  # B0 is not ours: ignored
    assert probe.measure()
    assert (gauge(registry, A0), gauge(registry, A1), gauge(registry, B0)) == (900, 0, None)
    assert client.asked == [[A0, A1]]  # only what is assigned is asked for


def test_a_partition_given_up_is_removed_and_not_set_again_by_a_round_that_began_before() -> None:
    client = StandInOffsets({A0: 1000, A1: 500})
    probe, registry = probe_with(client)
    probe.assigned({A0, A1})
    probe.update(positions({A0: 100, A1: 200}))
    assert probe.measure()
    assert gauge(registry, A1) == 300
    # A round is waiting for the broker (it asked for A0 and A1) when a rebalance takes A1 away.
    client.hold.clear()
    client.asking.clear()
    round_ = threading.Thread(target=probe.measure)
    round_.start()
    assert client.asking.wait(60)
    probe.assigned({A0})
    assert gauge(registry, A1) is None
    client.hold.set()
    round_.join(60)
    assert gauge(registry, A0) == 900 and gauge(registry, A1) is None


def test_the_loop_never_waits_for_a_broker_that_does_not_answer() -> None:
    client = StandInOffsets({A0: 1000})
    probe, registry = probe_with(client)
    probe.assigned({A0})
    client.hold.clear()
    round_ = threading.Thread(target=probe.measure, daemon=True)
    round_.start()
    assert client.asking.wait(60)
    # The loop's calls return while the broker call still hangs.
    probe.update(positions({A0: 10}))
    probe.assigned({A0, A1})
    assert round_.is_alive()
    client.hold.set()
    round_.join(60)
    assert gauge(registry, A0) == 990  # the position handed over while the round waited


def test_a_broker_away_keeps_the_last_values_and_is_one_warning_a_minute(caplog) -> None:
    client = StandInOffsets({A0: 1000})
    probe, registry = probe_with(client)
    probe.assigned({A0})
    probe.update(positions({A0: 100}))
    assert probe.measure()
    client.error = TimeoutError("no answer")
    probe.update(positions({A0: 400}))
    with caplog.at_level(logging.DEBUG, logger="worker"):
        assert not probe.measure()
        assert not probe.measure()
    assert gauge(registry, A0) == 900
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no answer" in warnings[0].getMessage()
    client.error = None
    assert probe.measure() and gauge(registry, A0) == 600


def test_a_client_that_cannot_be_made_is_tried_again_next_round() -> None:
    client = StandInOffsets({A0: 50})
    attempts = []

    def connect() -> StandInOffsets:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("no broker")
        return client

    metrics, registry = new_metrics()
    probe = LagProbe(metrics, connect)
    probe.assigned({A0})
    probe.update(positions({A0: 20}))
    assert not probe.measure()
    assert probe.measure() and gauge(registry, A0) == 30
    assert probe.measure() and len(attempts) == 2  # one client, kept


def test_the_thread_measures_every_interval_and_stops_closing_its_client() -> None:
    client = StandInOffsets({A0: 1000})
    probe, registry = probe_with(client, every_s=0.05)
    probe.assigned({A0})
    probe.update(positions({A0: 1}))
    probe.start()
    assert client.asking.wait(60)
    probe.stop()
    probe._thread.join(60)  # stop() waits only a little: a round may be stuck on a broker
    assert not probe._thread.is_alive() and probe._thread.daemon
    assert client.closed and gauge(registry, A0) == 999


def test_without_a_client_the_probe_only_keeps_the_gauge_to_the_assignment() -> None:
    metrics, registry = new_metrics()
    metrics.consumer_lag.labels(topic="a", partition="1").set(5)
    probe = LagProbe(metrics)
    probe.start()
    probe.assigned({A0})
    assert gauge(registry, A1) is None
    probe.stop()

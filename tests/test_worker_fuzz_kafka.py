"""A short hostile-input run (tooling/hostile.py; `make fuzz` runs it at length): every kind of hostile
record mixed with valid ones, on the real broker with both Kafka clients. Each input has exactly one
outcome, and the worker keeps running."""

from __future__ import annotations

import pytest

from tooling.hostile import HOSTILE, run, table

pytestmark = pytest.mark.integration


def test_every_input_has_one_outcome_whatever_it_holds(kafka_bootstrap, tiny_bundle, transport) -> None:
    n = 4 * len(HOSTILE)  # every hostile kind twice, as many valid records
    result = run(kafka_bootstrap, tiny_bundle.folder.parent.parent, n, transport, bombs=1)
    print(table(result, transport))
    assert result.worker_alive
    assert result.missing == [] and result.duplicates == 0
    if transport == "kafka-python":  # it refuses to unpack the bomb past --max-unpacked-bytes
        assert set(result.by_kind) == {"valid", *HOSTILE, "gzip bomb (64 MiB unpacked)"}
        assert result.by_kind["gzip bomb (64 MiB unpacked)"] == {"unreadable": 1}
    else:  # its input topic stored uncompressed, as it requires by default: the broker refuses the bomb
        assert set(result.by_kind) == {"valid", *HOSTILE} and result.refused_bombs == 1
    assert set(result.by_kind["valid"]) == {"scored"}
    refused = {kind for kind, outcomes in result.by_kind.items() if "scored" not in outcomes}
    # What no model can score is dead-lettered with a reason, never dropped.
    assert {
        "tombstone",
        "not json",
        "deep nesting",
        "ts year 9999",
        "key 600 KB",
        "over the size limit",
    } <= refused

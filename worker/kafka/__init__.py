"""The Kafka clients behind the worker: kafka-python (the default) or confluent-kafka (librdkafka,
`--transport confluent`), each behind the small interface in `worker.kafka.protocol`.

The worker needs little from a client: subscribe with rebalance callbacks (both libraries run
them inside poll, on the loop's thread), poll a batch of messages, commit exact offsets, and
produce with a delivery report it can check after a flush. The lag metric asks the broker for
end offsets with a client of its own (worker/lag.py; KafkaPythonOffsets, ConfluentOffsets).
Messages from either side carry `topic`, `partition`, `offset`, `key`, `value` and `timestamp`
(ms), so the stages downstream do not know which client read them.

Why two: kafka-python is pure Python, and on a 2-core machine its fetch parsing and its
producer's sender thread take GIL time from decoding and publishing; librdkafka does that
work in C threads (see docs/results.md, drain rates).

The backends import `protocol` and nothing else of the worker; `worker.source.build_clients`
imports the one chosen, when it is chosen (confluent-kafka is an optional extra).
"""

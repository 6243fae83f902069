"""Chores beside the worker, as `python -m worker <tool>`: `topics` creates input topics the way the
docs advise, `send` puts a file's records on a topic, `follow` prints what the worker writes. They
reach Kafka with the worker's own connection settings (the WORKER_* variables: bootstrap servers,
security, SASL, TLS)."""

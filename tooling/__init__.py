"""The project's own tooling, beside the product: what the tests, the benchmarks, the demo and the
`make fuzz` / `make chaos` programs share. Nothing in the product (schemas/, training/, worker/)
imports it, and it imports no test.

  broker   the project's Apache Kafka (deploy/kafka/kafka.sh) started and stopped from Python
  kafka    topics (created as advised), producing, reading back, commits and end offsets
  process  `python -m worker` as a process of its own, configured through WORKER_* variables
  hostile  `make fuzz`: hostile records mixed with valid ones, every input accounted
  chaos    `make chaos`: broker and worker kills on a 3-broker cluster, every input accounted
"""

"""End-to-end demonstrations on real MNIST data through a real Kafka broker.

python -m demo            the worker scoring a live stream (what `make demo` runs)
python -m demo.roundtrip  records through the broker, decoded, one dead-lettered
"""

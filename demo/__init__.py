"""End-to-end demonstration on real MNIST data through a real Kafka broker."""

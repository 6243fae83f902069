"""End-to-end demonstrations on real MNIST data through a real Kafka broker.

python -m demo            the worker scoring a live stream (what `make demo` runs)
"""

# Shared by the demos' settings models: DEMO_* variables, kebab-case flags.
DEMO_SETTINGS = dict(env_prefix="DEMO_", cli_kebab_case=True, frozen=True, cli_implicit_flags=True)

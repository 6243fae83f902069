# The few verbs a newcomer types. Every target does its own set-up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BROKERS ?= 1
PYTEST_ARGS ?=
CHAOS_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test test-all lint prom-check rule-test prometheus demo train train-kpi bench gpu-check chaos fuzz kafka-jars kafka-up kafka-down kafka-status clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: $(VENV)/.installed kafka-jars  ## .venv with the package and its extras, and the Kafka jars (re-runs are no-ops)

# Re-installs only when pyproject.toml changes; torch alone is ~4 GB the first time.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev,confluent]'
	@touch $@

kafka-jars: .kafka/lib/.stamp  ## fetch Apache Kafka's jars from Maven Central (deploy/kafka/pom.xml)

.kafka/lib/.stamp: deploy/kafka/pom.xml
	rm -rf .kafka/lib
	mvn -q -B -f deploy/kafka/pom.xml package
	@touch $@

kafka-up: kafka-jars  ## start a local Kafka on localhost:9092 (BROKERS=3 for a 3-node cluster on 9092-9094)
	deploy/kafka/kafka.sh up --brokers $(BROKERS)

kafka-down:  ## stop the local Kafka (no Java process is left)
	deploy/kafka/kafka.sh down

kafka-status:  ## is the local Kafka running? (says so either way; kafka.sh status exits 3 when it is not)
	@deploy/kafka/kafka.sh status || [ $$? -eq 3 ]

lint: $(VENV)/.installed  ## ruff
	$(PY) -m ruff check .

test: setup lint prometheus  ## the whole suite, Kafka integration tests included (they start their own broker), then prom-check
	$(PY) -m pytest -m "not slow" --durations=15 $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory prom-check

prom-check: setup rule-test  ## the rule unit tests, then every alert rule and dashboard query, evaluated by a real Prometheus scraping a running worker
	$(PY) -m tooling.promcheck

rule-test: prometheus  ## promtool: lint the rules and run their unit tests (deploy/prometheus/tests/, seconds, no worker)
	promtool check rules --lint=all deploy/prometheus/rules.yml
	promtool test rules deploy/prometheus/tests/*.test.yml

# Debian's prometheus package (server and promtool), installed when neither is on PATH.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	  echo "prom-check needs Prometheus: install Debian's package as root (apt-get install prometheus)" \
	       "or put the prometheus and promtool binaries on PATH" >&2; exit 2; fi; \
	echo "installing Debian's prometheus package (server and promtool)"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

test-all: setup lint  ## the suite including the slow quality runs
	$(PY) -m pytest $(PYTEST_ARGS)

train: $(VENV)/.installed  ## train the default MNIST bundle into models/mnist-vae/<next version> (~1 min on 2 cores)
	$(PY) -m training train

KPI_DATA := .demo/kpi-nonstationary
train-kpi: $(VENV)/.installed  ## generate KPI series (as the demo does) and train a KPI bundle into models/kpi-vae/
	@test -f $(KPI_DATA)/kpi.csv || $(PY) -m training synth --out $(KPI_DATA) --series 20 --days 28 --seed 11 --profile nonstationary
	$(PY) -m training train --dataset csv --data $(KPI_DATA)/kpi.csv

fuzz: setup  ## hostile records (46 kinds) mixed with valid ones through the worker, both Kafka clients; every input accounted
	$(PY) -m tooling.hostile $(FUZZ_ARGS)

bench: setup  ## throughput and latency of each stage on a private broker (trains the bundles first if none)
	@ls models/mnist-vae/*/manifest.json >/dev/null 2>&1 || $(PY) -m training train
	@ls models/kpi-vae/*/manifest.json >/dev/null 2>&1 || $(MAKE) --no-print-directory train-kpi
	$(PY) -m bench.run

GPU_CHECK_ARGS ?=
gpu-check: setup  ## onnxruntime alone per model and batch, IO binding vs run(), the worker's path from memory (g1-g3; docs/benchmarks.md#gpu)
	@ls models/mnist-vae/*/manifest.json >/dev/null 2>&1 || $(PY) -m training train
	$(PY) -m bench.gpu_check $(GPU_CHECK_ARGS)

chaos: setup  ## broker kills, a short ISR, a cluster down at start, a killed worker, on a 3-broker cluster; then exactly-once through broker outages (3 brokers and 1); every input accounted (docs/chaos.md)
	$(PY) -m tooling.chaos $(CHAOS_ARGS)
	$(PY) -m tooling.chaos --processing-guarantee exactly-once --out .chaos/results-eos.md $(CHAOS_EOS_ARGS)
	$(PY) -m tooling.chaos --processing-guarantee exactly-once --brokers 1 --scenarios all-down-15s,all-down-60s \
	  --out .chaos/results-eos-1.md $(CHAOS_EOS_ARGS)

demo: setup kafka-up  ## images and KPI series through a local Kafka and the worker (trains bundles if none)
	$(PY) -m demo

clean: kafka-down  ## stop Kafka and remove its data (keeps .venv and the jars)
	rm -rf .kafka/run

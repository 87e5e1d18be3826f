# Freshline — build, test and demo. Every target installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
SWIFT ?= swift
APT_PACKAGES := libopenblas-dev curl prometheus python3-prometheus-client
RELEASE_BIN := .build/release/freshline

.PHONY: all deps build release test demo demo-engine cluster-demo bench bench-check bench-thresholds fixtures proto format lint clean

all: build

# Debian packages the build links against; installed only when missing (needs root or sudo).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6.2 or newer is required (https://www.swift.org/install/linux/)"; exit 1; }

build: deps
	$(SWIFT) build --product freshline

release: deps
	$(SWIFT) build -c release --product freshline

# The whole test suite, in four `swift test` runs, each selected by test target (module-qualified test IDs), never
# by a list of suite names a new test could escape: first every in-process target (engine unit tests, zoo parity
# with onnxruntime on committed fixtures, ONNX node tests, serving tests, the store behaviour tests on SQLite and on
# a throwaway PostgreSQL: scripts/with-pg.sh installs and starts Debian's postgresql; FRESHLINE_POSTGRES_URL names
# your own server instead). Second, FreshlineIntegrationTests: every test that starts processes of its own, the
# freshline binary (kill -9 during a run or a job, the advise command, SIGTERM, the manifest argument's spellings,
# check's warnings), a private PostgreSQL crashed and restarted under load, and real MLServer and llama-cpp-python
# servers for the upstream models (scripts/upstreams.sh setup installs them; the first time it compiles llama.cpp,
# ~6 min). A test that starts a process belongs in that target. Then QUIET_TESTS, on their own. The multi-process
# cluster tests (FreshlineIntegrationTests.ClusterTests) run last: on two cores these processes would slow the
# timing-sensitive in-process serving tests (deadlines, sheds, webhook timeouts) enough to fail them. Then the HTTP
# request fuzzer for FUZZ_SECONDS (libFuzzer; its release build takes ~10 minutes the first time), and last the Open
# Inference Protocol interop test with the real tritonclient (Python venv from PyPI). Each test run is bounded
# (20 min): a hang fails the run instead of holding CI.
FUZZ_SECONDS ?= 60
INTEGRATION_TESTS = FreshlineIntegrationTests
CLUSTER_TESTS = FreshlineIntegrationTests.ClusterTests
# In-process tests that count what happens within seconds (the shared rate budget's refills, retries and connects
# within a deadline): run on their own, on a quiet machine (under the first run's start-up load they missed their
# deadlines).
QUIET_TESTS = FreshlineServingTests.SharedBudgetTests|FreshlineUpstreamTests.UpstreamClientTests
test: deps lint
	$(SWIFT) build --build-tests
	scripts/upstreams.sh setup
	scripts/with-pg.sh bash -c 'timeout 1200 $(SWIFT) test --skip-build --skip "$(INTEGRATION_TESTS)|$(QUIET_TESTS)" \
	  && timeout 1200 $(SWIFT) test --skip-build --filter $(INTEGRATION_TESTS) --skip $(CLUSTER_TESTS) \
	  && timeout 1200 $(SWIFT) test --skip-build --filter "$(QUIET_TESTS)" \
	  && timeout 1200 $(SWIFT) test --skip-build --filter $(CLUSTER_TESTS)' \
	  2>&1 | tee .build/test-output.txt
	@scripts/test-summary.sh .build/test-output.txt
	scripts/fuzz-http.sh $(FUZZ_SECONDS)
	scripts/interop-test.sh .build/debug/freshline

# The main job on the embedded default: the worked example (docs/demo.md) — data, manifest, server, nightly
# batch, three minutes of mixed traffic, then the advisor's table and its HTML report (.freshline-demo/).
demo: release
	$(RELEASE_BIN) demo

# Two servers and two workers on one throwaway PostgreSQL (docs/cluster.md): a sharded batch run, real-time traffic
# and async jobs across both servers, and who computed what.
cluster-demo: release
	scripts/cluster-demo.sh $(RELEASE_BIN)

# The engine and a small serving tour on the model zoo (inspect, run, time, serve).
demo-engine: release
	@scripts/demo.sh $(RELEASE_BIN)

# Our engine against onnxruntime on the same files (needs PyPI for the reference side).
bench: release
	FRESHLINE=$(RELEASE_BIN) bench/engine-vs-onnxruntime

# Guards for the hand-written fast paths (JSON reader and writer, decimal reader, columnar CSV path): the
# FastPathBenchmarks target of the Benchmarks package (ordo-one/benchmark), checked against the p90 thresholds
# committed under Benchmarks/Thresholds/<Swift major.minor>/: malloc counts exactly (they are the same on every
# run), wall-clock time within 2× (a lost fast path costs more; a loaded machine does not). Fails on a regression and
# on malloc counts lower than recorded ("better"), so that the thresholds are tightened with `make bench-thresholds`
# (bench/RESULTS.md).
# A cold Benchmarks/.build first builds the package and its dependencies in release mode (minutes: bench/RESULTS.md).
BENCH_THRESHOLDS = Thresholds/$(shell $(SWIFT) --version 2>&1 | sed -n 's/.*Swift version \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
# BENCH_JOBS="-j 2" (or so) limits the build's parallel jobs.
BENCH_JOBS ?=
BENCH_GUARD = --target FastPathBenchmarks --metric mallocCountTotal --metric wallClock --skip '^Empty$$' --path $(BENCH_THRESHOLDS) --no-progress
bench-check: deps
	cd Benchmarks && $(SWIFT) build -c release $(BENCH_JOBS) --product FastPathBenchmarks
	@cd Benchmarks && { $(SWIFT) package $(BENCH_JOBS) benchmark thresholds check $(BENCH_GUARD) 2>&1 \
	    | tee .build/bench-check-output.txt; rc=$${PIPESTATUS[0]}; \
	  if [ $$rc = 0 ]; then echo "bench-check: every fast path within its thresholds (Benchmarks/$(BENCH_THRESHOLDS))"; \
	  elif grep -q benchmarkThresholdImprovement .build/bench-check-output.txt; then \
	    echo "bench-check: FAILED: better than the thresholds in Benchmarks/$(BENCH_THRESHOLDS); if that is meant, record them with make bench-thresholds"; exit 1; \
	  else echo "bench-check: FAILED: a fast path exceeds its thresholds in Benchmarks/$(BENCH_THRESHOLDS) (or the run failed)"; exit 1; fi; }

# Records the fast paths' thresholds anew (after an intended change; commit the JSON files it writes).
bench-thresholds: deps
	cd Benchmarks && $(SWIFT) build -c release $(BENCH_JOBS) --product FastPathBenchmarks
	mkdir -p Benchmarks/$(BENCH_THRESHOLDS)
	cd Benchmarks && $(SWIFT) package $(BENCH_JOBS) --allow-writing-to-package-directory benchmark thresholds update $(BENCH_GUARD)

# Regenerates the zoo and the ONNX node-test cases (Python virtual environment from PyPI).
fixtures:
	.venv-tools/bin/python scripts/make_zoo.py || { scripts/venv.sh && .venv-tools/bin/python scripts/make_zoo.py; }
	.venv-tools/bin/python scripts/make_node_cases.py

proto:
	scripts/generate-proto.sh

SWIFT_SOURCES := Sources Tests Benchmarks/Benchmarks Benchmarks/Sources Fuzz/Sources Package.swift

# One formatter, one configuration (.swift-format); `make test` fails on any lint finding.
format:
	$(SWIFT) format format -i -r --parallel $(SWIFT_SOURCES)

lint:
	$(SWIFT) format lint -r --strict --parallel $(SWIFT_SOURCES)

clean:
	rm -rf .build

# Strata. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Build products and tools live outside the clone and are reused between
# runs (DuckDB's C++ alone takes ~40 minutes to build on 2 cores).
STRATA_CACHE ?= $(HOME)/.cache/strata
export STRATA_CACHE
export CARGO_TARGET_DIR ?= $(STRATA_CACHE)/target
export PATH := $(STRATA_CACHE)/tools/bin:$(HOME)/.cargo/bin:$(PATH)

.PHONY: help test run demo archive lint layers fmt openapi bench bench-scale bench-micro services clean-test-dbs ui-vendor

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

test: ## Start/verify PostgreSQL, Redis, an S3 server and (when buildable) TimescaleDB; fmt check, clippy, then the whole suite on native partitions and on a hypertable (what CI runs)
	@scripts/test.sh

run: ## Serve on 127.0.0.1:8080 with a private PostgreSQL in ./.strata (or STRATA_DATABASE_URL); print a demo key, an operator key and the dashboard URL
	@scripts/run.sh

demo: ## Load ~4 months of generated events into the `make run` database and archive the old days (ARGS=--days 60 …)
	@scripts/demo.sh $(ARGS)

archive: ## Run one archiver pass over the `make run` database (ARGS=--dry-run to preview)
	@scripts/archive.sh $(ARGS)

lint: ## cargo fmt --check, dependency order (scripts/check-sorted-deps.py), import layers (scripts/check-layers.py), the image's dependency layer (scripts/check-dockerfile.py), Markdown links (scripts/check-links.py), the compose stack's rules (scripts/check-compose.py) and clippy only
	cargo fmt --all --check
	scripts/check-sorted-deps.py
	scripts/check-layers.py
	scripts/check-dockerfile.py
	scripts/check-links.py
	scripts/check-compose.py
	cargo clippy --workspace --all-targets -- -D warnings

bench: ## Strata against its baselines on the same data (BENCH_SCALE=2 … for more; BENCH_HOT_LAYOUT=timescaledb for the hypertable; BENCH_ONLY_INGEST=1 for the ingest part alone), on a durable PostgreSQL with the settings of deploy/postgres/strata.conf; then the micro-benchmarks; rewrites that layout's section of docs/BENCHMARKS.md and docs/benchmarks/<layout>.json
	@eval "$$(scripts/ensure-services.sh)"; \
	eval "$$(scripts/ensure-s3.sh)"; \
	eval "$$(scripts/ensure-tools.sh)"; \
	scripts/ensure-timescaledb.sh >/dev/null; \
	eval "$$(scripts/ensure-bench-pg.sh)"; \
	if [ "$${BENCH_HOT_LAYOUT:-native}" = timescaledb ] \
	  && [ "$$(psql "$$STRATA_TEST_DATABASE_URL" -Atqc "SELECT current_setting('shared_preload_libraries') LIKE '%timescaledb%'")" != t ]; then \
	  echo "strata: the bench PostgreSQL does not preload timescaledb (see above)" >&2; exit 1; \
	fi; \
	cargo build --quiet --workspace --bins; \
	"$(CARGO_TARGET_DIR)/debug/strata-bench"; \
	[ -n "$${BENCH_ONLY_INGEST:-}" ] || cargo bench --workspace --profile dev --bench micro -- --warm-up-time 1 --measurement-time 3

bench-scale: ## The query set at each of BENCH_SCALES (default "1 4 8") against DuckDB alone: how each query's time grows with the events (BENCH_HOT_LAYOUT as for bench); rewrites the scale section of docs/BENCHMARKS.md and docs/benchmarks/scale-<layout>.json
	@eval "$$(scripts/ensure-services.sh)"; \
	eval "$$(scripts/ensure-s3.sh)"; \
	scripts/ensure-timescaledb.sh >/dev/null; \
	eval "$$(scripts/ensure-bench-pg.sh)"; \
	cargo build --quiet --workspace --bins; \
	for s in $${BENCH_SCALES:-1 4 8}; do \
	  BENCH_SCALE=$$s BENCH_ONLY_QUERIES=1 "$(CARGO_TARGET_DIR)/debug/strata-bench" || exit 1; \
	done

bench-micro: ## Criterion micro-benchmarks of the inner loops (dev profile: the one profile DuckDB is built in)
	cargo bench --workspace --profile dev --bench micro

openapi: ## Regenerate docs/openapi.json from the code
	cargo build --quiet --workspace --bins
	$(CARGO_TARGET_DIR)/debug/strata-api openapi > docs/openapi.json

layers: ## Each crate's areas, bottom first, and any import circle (scripts/check-layers.py --graph)
	@scripts/check-layers.py --graph

fmt: ## Format the code
	cargo fmt --all

services: ## Start/verify the test services (PostgreSQL, Redis, S3, TimescaleDB when buildable) and print their URLs
	@scripts/ensure-services.sh; scripts/ensure-s3.sh; scripts/ensure-timescaledb.sh

clean-test-dbs: ## Drop databases left by killed test runs
	@eval "$$(scripts/ensure-services.sh)"; eval "$$(scripts/ensure-timescaledb.sh)"; \
	for url in "$$STRATA_TEST_DATABASE_URL" $${STRATA_TEST_TIMESCALE_URL:-}; do \
	  psql "$$url" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'strata\_t\_%'" \
	    | while read -r db; do psql "$$url" -qc "DROP DATABASE \"$$db\" WITH (FORCE)"; done; \
	done

ui-vendor: ## Refresh the dashboard's vendored uPlot from the npm registry (UPLOT_VERSION=1.6.32)
	scripts/vendor-ui.sh

# Quick start: `make run` (the gateway on embedded Redis/PostgreSQL) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test browser espeak lint types unit bench bench-calls bench-webhooks bench-invoices bench-kpis bench-live screenshot vendor-chartjs load clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "voicegw needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/voicegw dev

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q

# The dashboard's browser tests drive Debian's Chromium (Playwright's own download is not
# used); installed here when missing and apt-get is at hand as root.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: install Chromium (apt-get install chromium) for the browser tests"

test: browser lint types unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Phone calls held by one gateway process on one core, and stock pipecat beside it (three
# runs of every level, about 30 minutes on a quiet machine; needs Redis and PostgreSQL on
# their default local ports, and espeak-ng, installed here when missing and apt-get is at
# hand as root); records the "Phone calls" section, or says why not (a busy machine).
# A quick end-to-end check: make bench-calls BENCH_CALLS_FLAGS="--runs 1 --sweep 2
# --pipecat 2 --ramp-s 2 --duration-s 8 --vad-phrases 2 --no-record" (about 3 minutes).
BENCH_CALLS_FLAGS ?=
espeak:
	@command -v espeak-ng >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; } \
	  || echo "note: install espeak-ng (apt-get install espeak-ng) for Silero's stop delay on real speech"

bench-calls: $(STAMP) espeak
	$(BIN)/python -m load.bench_calls $(BENCH_CALLS_FLAGS)

# Webhook deliveries per core: the delivery worker (one process, pinned to core 0) to a
# local receiver verifying signatures (about 2 minutes); records "Webhook deliveries".
bench-webhooks: $(STAMP)
	$(BIN)/python -m benchmarks.webhooks

# close_period for 10,000 subscribed tenants and the upcoming invoice read (about 1-2
# minutes); records "Invoice finalization".
bench-invoices: $(STAMP)
	$(BIN)/python -m benchmarks.invoices

# GET /v1/kpis for 30 days of a tenant with 1,000,000 conversations (seeding and rolling up
# take a few minutes; needs PostgreSQL and Redis on their default local ports); records "KPIs".
bench-kpis: $(STAMP)
	$(BIN)/python -m benchmarks.kpis

# What the live dashboard costs: the credit scripts' PUBLISH and the fan-out of one change
# to 1,000 streams of GET /v1/live (about 1 minute); records "Live dashboard".
bench-live: $(STAMP)
	$(BIN)/python -m benchmarks.live

# docs/dashboard.png (shown in README) and docs/dashboard-conversation.png: the dashboard
# with 60 days of seeded conversations, in Chromium (see `browser`).
screenshot: $(STAMP) browser
	$(BIN)/python -m benchmarks.screenshot

# Chart.js, vendored into the package once (the dashboard works offline, no CDN):
# api/static/vendor/ keeps the minified UMD build, its license and VERSION.
CHARTJS := 4.6.1
vendor-chartjs:
	rm -rf .vendor-tmp && mkdir .vendor-tmp && cd .vendor-tmp && npm pack --silent chart.js@$(CHARTJS) \
	  && tar xzf chart.js-$(CHARTJS).tgz
	grep -v '^//# sourceMappingURL' .vendor-tmp/package/dist/chart.umd.min.js > api/static/vendor/chart.umd.min.js
	cp .vendor-tmp/package/LICENSE.md api/static/vendor/chart.js.LICENSE.md
	rm -rf .vendor-tmp

load: $(STAMP)
	$(BIN)/python -m load.caller_cli --help

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

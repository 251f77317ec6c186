# One command each, on a fresh Linux machine with Python 3:
#   make demo   set up and run the whole loop on this machine (embedded broker, agent, collector, report)
#   make test   set up and run the tests (needs mosquitto, visudo and PostgreSQL's server programs; installed with
#               apt-get when missing, as root)
#   make bench  the benchmarks recorded in docs/PERFORMANCE.md
#   make faults the fault tests against a real Mosquitto, then their figures as a markdown table
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench setup clean mosquitto sudo postgresql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

setup: $(VENV)/.installed-dev

demo: $(VENV)/.installed-dev
	$(BIN)/dnnhost demo

mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	  else echo "the tests need mosquitto: sudo apt-get install mosquitto" >&2; exit 1; fi; }

# visudo checks the sudoers rule `install-service --allow-power-control` writes
sudo:
	@command -v visudo >/dev/null 2>&1 || test -x /usr/sbin/visudo || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null; \
	  else echo "the tests need visudo: sudo apt-get install sudo" >&2; exit 1; fi; }

# The tests start a private PostgreSQL (initdb into a temporary folder, its own port): they need the server's
# programs, never the machine's own server.
postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "the tests need PostgreSQL's server: sudo apt-get install postgresql" >&2; exit 1; fi; }

test: $(VENV)/.installed-dev mosquitto sudo postgresql
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev mosquitto postgresql
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/fleet.py --processes
	$(BIN)/python bench/sampler_cost.py
	$(BIN)/python bench/adaptive.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/zoo.py
	$(BIN)/python bench/report.py --db both
	$(BIN)/python bench/live.py
	$(BIN)/python bench/outbox.py
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/precision.py
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/steer.py
	$(BIN)/python bench/steer.py --broker-nodelay

FAULT_REPORT ?= build/faults.jsonl

.PHONY: faults
faults: $(VENV)/.installed-dev mosquitto
	@mkdir -p $(dir $(FAULT_REPORT)) && rm -f $(FAULT_REPORT)
	DNNPROF_FAULT_REPORT=$(FAULT_REPORT) $(BIN)/python -m pytest -p no:cacheprovider -rxX tests/test_faults.py; \
	status=$$?; $(BIN)/python tests/test_faults.py $(FAULT_REPORT); exit $$status

clean:
	rm -rf $(VENV) build *.egg-info

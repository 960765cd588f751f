# marketpulse — the two commands: `make demo` runs the service, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: demo test lint typecheck pytest env bench clean

# uv is installed into .tools/ when it is not on PATH: in a venv, or — where the venv module
# is missing (Debian without python3-venv) — with pip --target.
$(TOOLS)/bin/uv:
	@command -v uv >/dev/null 2>&1 || { \
	  echo "uv not found: installing it into $(TOOLS)/ (one time)"; \
	  { $(PYTHON) -m venv $(TOOLS) 2>/dev/null && \
	    $(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv; } || \
	  { rm -rf $(TOOLS) && mkdir -p $(TOOLS)/bin && \
	    $(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/pkg uv && \
	    ln -sf ../pkg/bin/uv $(TOOLS)/bin/uv; } || \
	  { echo "could not install uv: install it (https://docs.astral.sh/uv/) or python3-venv"; \
	    exit 1; }; }

env: $(if $(findstring $(TOOLS),$(UV)),$(TOOLS)/bin/uv)
	@$(UV) sync --frozen --quiet
	@$(UV) run --frozen --no-sync python -m marketpulse.native.build

demo: env
	$(UV) run --frozen --no-sync marketpulse demo

lint: env
	$(UV) run --frozen --no-sync ruff check src tests bench examples
	$(UV) run --frozen --no-sync ruff format --check src tests bench examples

typecheck: env
	$(UV) run --frozen --no-sync mypy src

pytest: env
	$(UV) run --frozen --no-sync pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: env
	$(UV) run --frozen --no-sync python -m bench

clean:
	rm -rf .venv $(TOOLS) .mypy_cache .ruff_cache .pytest_cache

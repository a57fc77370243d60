# Every target sets itself up from a fresh clone with only python3, git and make present.
# uv is bootstrapped into .tools/ with pip; the project environment lives in .venv/ (uv.lock).

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
RUN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Installed packages ship their bytecode: start-up time is part of the product (plan skips fast).
export UV_COMPILE_BYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help setup sandbox agent-clis demo test test-fast lint format typecheck check schemas bench clean

help: ## Show the targets and what they do
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python $(PYTHON) --quiet
	@touch $@

setup: $(VENV)/.synced ## Create .venv with the locked dependencies, every extra and the dev tools (uv)

sandbox: setup ## Install bubblewrap when missing (needs root or sudo) and say whether run_command can run
	@actions/sandbox-setup.sh
	@$(RUN)/orchestrator sandbox || true

# The vendor CLIs' installs (about 900 MB) are a cache: `make clean` keeps them; delete
# .cache/agent-clis to reinstall. The installer skips a CLI that is already there, so this is fast.
AGENT_CLIS := .cache/agent-clis
agent-clis: setup ## Install the pinned vendor agent CLIs (Claude Code, Codex, Gemini) into .cache/agent-clis for the tests
	@command -v npm >/dev/null || { echo "make agent-clis: npm not found on PATH: install Node.js 20+ with npm" >&2; exit 1; }
	@$(RUN)/python -m orchestrator.agent_clis.install --dir $(AGENT_CLIS) claude-code codex-cli gemini-cli >/dev/null

demo: sandbox ## Run a complete orchestration offline on the bundled sample project
	$(RUN)/orchestrator demo

test: sandbox agent-clis ## Run the whole test suite (offline; warnings are errors; progress per file)
	$(RUN)/python -m pytest --durations=10

test-fast: sandbox agent-clis ## The inner loop: the suite without act and the slow end-to-end tests
	$(RUN)/python -m pytest -q -m "not act and not slow"

lint: setup ## ruff lint and format check
	$(RUN)/ruff check .
	$(RUN)/ruff format --check .

format: setup ## Apply ruff's fixes and formatting
	$(RUN)/ruff check --fix .
	$(RUN)/ruff format .

typecheck: setup ## mypy --strict on orchestrator/
	$(RUN)/mypy

schemas: setup ## Regenerate schemas/ from the contract and config models
	$(RUN)/python -m orchestrator.schema_export

check: lint typecheck test ## Everything CI runs

# A revision to measure side by side (sections 1 and 3): `make bench BASELINE=v1.0.0`.
BASELINE ?=
bench: setup ## Benchmarks (not part of the tests); results in BENCHMARKS.md (BASELINE=rev to compare)
	$(RUN)/python bench/overhead.py --write $(if $(BASELINE),--baseline $(BASELINE))

clean: ## Remove environments, caches and run outputs (keeps the agent CLIs in .cache/agent-clis)
	rm -rf .tools $(VENV) .orchestrator .mypy_cache .ruff_cache .pytest_cache

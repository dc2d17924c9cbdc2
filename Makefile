# The two commands a fresh machine needs: `make up` and `make test`.
.PHONY: up test lint format bench ui screenshots bootstrap

bootstrap:
	@scripts/bootstrap.sh

up: bootstrap
	.venv/bin/aisopod stack up

test:
	@scripts/bootstrap.sh --e2e --openclaw
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	cd services/static-ui && npm test --silent
	.venv/bin/python -m pytest -q

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: bootstrap
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: bootstrap
	.venv/bin/python -m bench

# Refresh docs/screenshots from the browser walk-through (a plain test run leaves them alone).
screenshots:
	@scripts/bootstrap.sh --e2e
	AISOPOD_SCREENSHOTS=docs .venv/bin/python -m pytest -q tests/e2e

ui: bootstrap

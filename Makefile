# slipway — every target is a verb; the CLI does the work.
# `make run` and `make test` work on a fresh clone: they install uv and the locked environment first.

SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
RUN := $(UV) run --locked --no-sync
PYTEST_ARGS ?=

.PHONY: help install run test test-unit lint format compile-pipeline bench clean seed-data images push deploy rollback submit test-images serve

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: ## install uv if missing, then the locked environment (and the Debian tools tests need)
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked
	@scripts/ensure-debian-tools.sh promtool:prometheus prometheus-pushgateway:prometheus-pushgateway etcd:etcd-server chromium:chromium

run: install ## seed the DVC remote if empty, run the training pipeline end to end, print a summary
	$(RUN) slipway run

seed-data: install ## write the dataset versions, track them with DVC, push to the remote
	$(RUN) slipway data seed

test: install ## the whole test suite (the image build runs in `make test-images`)
	$(RUN) pytest -m "not docker" $(PYTEST_ARGS)

test-unit: install ## only the fast unit tests
	$(RUN) pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff, and the import contracts of docs/architecture.md (import-linter)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports

format: install ## apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

compile-pipeline: install ## write pipelines/training_pipeline.yaml (committed)
	$(RUN) slipway compile

bench: install ## benchmarks (bench.scale runs bench.pipeline too); results go to docs/benchmarks.md
	@scripts/ensure-debian-tools.sh wrk:wrk valgrind:valgrind callgrind_control:valgrind
	$(RUN) python -m bench.scale
	$(RUN) python -m bench.search
	$(RUN) python -m bench.serving
	$(RUN) python -m bench.instructions
	$(RUN) python -m bench.mirror
	$(RUN) python -m bench.guard

serve: install ## serve the local champion from the embedded EFS folder on 127.0.0.1:8080 (after make run)
	$(RUN) slipway serve --champion --host 127.0.0.1

deploy: ## pin VERSION in overlays/$(ENV) and roll it out (DRY_RUN=1: print the diff only)
	@test -n "$(VERSION)" || { echo "usage: make deploy VERSION=<version code> [ENV=prod] [DRY_RUN=1]" >&2; exit 2; }
	$(RUN) slipway deploy --version "$(VERSION)" --env "$(or $(ENV),prod)" $(if $(DRY_RUN),--dry-run)

rollback: ## roll slipway-server back one revision (REVISION=N), move champion back, record who/when/why (REASON=...)
	$(RUN) slipway rollback --env "$(or $(ENV),prod)" $(if $(REASON),--reason "$(REASON)") $(if $(REVISION),--to-revision $(REVISION))

submit: install ## upload the compiled pipeline (version = git commit) and start a run; ARGS="--cron '0 3 * * *'" etc.
	$(RUN) slipway submit $(ARGS)

test-images: install ## build both images on a private dockerd and run them (root, CPU-heavy, ~10 min cold)
	scripts/test-images.sh $(PYTEST_ARGS)

images: ## build both images, tagged <registry><name>:<version> and :<git commit>
	scripts/images.sh build

push: ## push both tags of both images (ECR login when SLIPWAY_IMAGE_REGISTRY is an ECR host)
	scripts/images.sh push

clean: ## remove local state (.slipway/) and caches
	rm -rf .slipway .pytest_cache .ruff_cache

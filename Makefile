# Two commands from a fresh clone: `make converge` and `make test`.
# Real hosts: set LITELLM_INVENTORY=hosts.yml (see docs/real-hosts.md); otherwise the
# targets use the podman sandbox host.
VENV ?= .venv
PY := $(VENV)/bin/python
PYINFRA := $(VENV)/bin/pyinfra
SANDBOX ?= litellm-sandbox
SANDBOX_PORT ?= 2222
# the sandbox's Debian release: 12 (bookworm) or 13 (trixie), e.g. `make converge DEBIAN=13`
# (a sandbox of the other release under the same name is refused: `make sandbox-down` first)
DEBIAN ?= 12


.PHONY: converge dry check test unit unit-tests integration sandbox-up sandbox-down system-deps venv lock lint requirements images docs

converge: system-deps venv
ifndef LITELLM_INVENTORY
	@$(PY) -m litellm_runner.sandbox up --name $(SANDBOX) --port $(SANDBOX_PORT) --release $(DEBIAN)
	LITELLM_SANDBOXES=$(SANDBOX) $(PYINFRA) inventory.py deploy.py -y
else
	$(PYINFRA) inventory.py deploy.py -y
endif

dry: venv
	$(PYINFRA) inventory.py deploy.py --dry

# exit 0: no drift, 2: drift, 1: the check could not run. Reports in reports/.
check: venv
	@mkdir -p reports
	$(PY) -m litellm_runner.cli.check --json reports/drift.json --junit reports/drift.xml

# the unit tests (2 workers, 2-3.5 min) while the images are built (a fresh machine's images are mostly
# downloads), then the integration files in 2 workers, each file whole in one worker (its sandboxes are
# its own; see tests/integration/conftest.py)
test: system-deps venv
	$(MAKE) --no-print-directory -j 2 unit-tests images
	$(PY) -m pytest tests/integration -v -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=0 --durations-min=5

unit-tests: venv
	$(PY) -m pytest tests/unit -v -p no:cacheprovider -n 2

unit: venv
	$(PY) -m pytest tests/unit -q -p no:cacheprovider -n 2

integration: system-deps venv images
	$(PY) -m pytest tests/integration -v -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=0 --durations-min=5

# both sandbox images (Debian 12 for the full suite, 13 for tests/integration/test_release.py) and the
# wheelhouse of each (the venv locks' wheels its pip installs from, docs/sandbox.md), built side by side
# (mostly downloads); each is cached by the hash of what it is built from
images: system-deps venv
	$(PY) -m litellm_runner.sandbox build --release 12 & a=$$!; \
	$(PY) -m litellm_runner.sandbox build --release 13 & b=$$!; \
	wait $$a && wait $$b

sandbox-up: system-deps venv
	@$(PY) -m litellm_runner.sandbox up --name $(SANDBOX) --port $(SANDBOX_PORT) --release $(DEBIAN)

sandbox-down:
	@python3 -m litellm_runner.sandbox down --name $(SANDBOX)

system-deps:
	@scripts/system-deps

# After editing files/litellm-venv-requirements.txt: lock its full dependency closure with
# hashes, one file per host Python (files/locks/), with uv. Commit the pins and the locks together.
lock: venv
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==0.13.9
	$(PY) scripts/lock-venv

# The runner's own dependencies: requirements.txt pins every one of them with its hashes.
venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@echo "venv: creating $(VENV) and installing requirements.txt (hash-checked; about a minute)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements.txt
	touch $@

# After editing requirements.in: lock it again into requirements.txt (every transitive pin with
# its hashes, Python 3.11, any platform), with uv. Pins already in requirements.txt are kept
# unless requirements.in asks for another version. Commit both files together.
requirements: venv
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip compile -q --generate-hashes --universal --python-version 3.11 \
		--custom-compile-command "make requirements" requirements.in -o requirements.txt

# The documentation site (mkdocs.yml, docs/) into site/, warnings as errors; the settings reference's
# table is generated from litellm_runner/settings.py as it builds (docs/hooks/settings_table.py)
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# ruff (lint + format check), mypy and the import layers (lint-imports), configured in pyproject.toml;
# .ci/run runs this before the tests
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

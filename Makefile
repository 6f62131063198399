# rmteach: two commands on a fresh machine.
#   make lab    create .venv if missing, install, start JupyterLab on notebooks/ (127.0.0.1, with a token)
#   make test   create .venv if missing, install, run every test
# and for developers: make bench (speed targets, not tests).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rmteach-installed
HOST   ?= 127.0.0.1
PORT   ?= 8888

.PHONY: install lab test bench clean

install: $(STAMP)

# Re-runs when pyproject.toml changes. torch is pinned to ==2.13.0, so pip takes
# the CPU wheel (2.13.0+cpu) where one is offered and never a newer CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

lab: $(STAMP)
	@token=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))'); \
	echo "JupyterLab: http://$(HOST):$(PORT)/lab?token=$$token"; \
	$(VENV)/bin/jupyter lab --ip=$(HOST) --port=$(PORT) \
		--ServerApp.root_dir=notebooks --IdentityProvider.token=$$token

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/losses.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis rmteach.egg-info

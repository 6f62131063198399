# rmteach: two commands on a fresh machine.
#   make lab    create .venv if missing, install, start JupyterLab on notebooks/ (127.0.0.1, with a token)
#   make test   create .venv if missing, install, run every test
#   make explore  serve the loss explorer alone (Voila, sliders only) on 127.0.0.1, with a token
# and for developers: make bench (speed targets, not tests).
# Instructors (nbgrader course in assignments/, see assignments/README.md):
#   make assignments  validate the source notebooks, generate release/, validate --invert the release
#   make autograde    autograde everything under assignments/submitted/<student>/<assignment>/
#                     in parallel (WORKERS=n), student kernels sandboxed (SANDBOX=auto|require|user|off;
#                     no sandbox: grading stops; SANDBOX=off grades unsandboxed, on purpose)
#   make feedback     HTML feedback (no hidden tests) in assignments/feedback/
#   make grades       print the grade table, write assignments/grades.csv, and with assignments/lms_students.csv
#                     also the Canvas and Moodle import files grades-canvas.csv, grades-moodle.csv (LMS_MAP=file)
#   make report       the class report for instructors: assignments/report.html (mode 0600; it names students)
#   make grade-demo   the whole workflow for three made-up students, in a temporary course copy
# Teaching a class (root; deploy/README.md):
#   make hub          a demo JupyterHub on 127.0.0.1:$(HUB_PORT) with nbgrader's exchange, an instructor and
#                     two students (real Unix users); prints the URL and the logins
#   make hub-down     stop it, remove its users and files (PURGE=1: also the software in /opt/rmteach-hub)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rmteach-installed
HOST   ?= 127.0.0.1
PORT   ?= 8888
EXPLORE_PORT ?= 8866

COURSE ?= assignments
# make autograde: WORKERS=n parallel graders (default one per core); SANDBOX=auto|require|user|off
WORKERS ?=
SANDBOX ?= $(or $(RMTEACH_SANDBOX),auto)

.PHONY: install lab explore test bench clean assignments autograde feedback grades report grade-demo hub hub-down

install: $(STAMP)

# Re-runs when pyproject.toml changes. torch is pinned to ==2.13.0, so pip takes
# the CPU wheel (2.13.0+cpu) where one is offered and never a newer CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

# JupyterLab refuses to run as root unless told: as root (a container, this project's machines)
# it gets --allow-root; it still listens on 127.0.0.1 only, behind the token.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	@token=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))'); \
	echo "JupyterLab: http://$(HOST):$(PORT)/lab?token=$$token"; \
	$(VENV)/bin/jupyter lab --ip=$(HOST) --port=$(PORT) $(ALLOW_ROOT) \
		--ServerApp.root_dir=notebooks --IdentityProvider.token=$$token

# The main explorer as a slider-only app: Voila runs notebooks/explore.ipynb and shows
# its output, never its code.
explore: $(STAMP)
	@token=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))'); \
	echo "Loss explorer: http://$(HOST):$(EXPLORE_PORT)/?token=$$token"; \
	$(VENV)/bin/voila notebooks/explore.ipynb --no-browser --Voila.ip=$(HOST) \
		--port=$(EXPLORE_PORT) --token=$$token

test: $(STAMP)
	$(PY) -m pytest

# Runs every benchmark, then fails if any missed its target.
bench: $(STAMP)
	@status=0; \
	$(PY) bench/losses.py || status=1; \
	$(PY) bench/latency.py || status=1; \
	$(PY) bench/grading.py || status=1; \
	exit $$status

assignments: $(STAMP)
	$(PY) -m rmteach.grading assignments --course $(COURSE)

autograde: $(STAMP)
	$(PY) -m rmteach.grading autograde --course $(COURSE) $(if $(FORCE),--force) \
		$(if $(WORKERS),--workers $(WORKERS)) --sandbox $(SANDBOX)

feedback: $(STAMP)
	$(PY) -m rmteach.grading feedback --course $(COURSE)

grades: $(STAMP)
	$(PY) -m rmteach.grading grades --course $(COURSE) $(if $(LMS_MAP),--lms-map $(LMS_MAP))

report: $(STAMP)
	$(PY) -m rmteach.grading report --course $(COURSE)

grade-demo: $(STAMP)
	$(PY) -m rmteach.grading demo --sandbox $(SANDBOX)

HUB_PORT  ?= 8000
HUB_STATE ?= /srv/rmteach-hub/demo

hub:
	@RMTEACH_HUB_PORT=$(HUB_PORT) RMTEACH_HUB_STATE=$(HUB_STATE) deploy/jupyterhub/setup.sh
	@deploy/jupyterhub/start.sh $(HUB_STATE)
	@echo "Open http://127.0.0.1:$(HUB_PORT)/ and log in as (user password):"; sed 's/^/    /' $(HUB_STATE)/logins
	@echo "The instructor's course: $$(sed -n 's/.*"course": "\(.*\)",/\1/p' $(HUB_STATE)/deployment.json). Stop and remove it all: make hub-down"

hub-down:
	@deploy/jupyterhub/teardown.sh $(if $(PURGE),--purge) $(HUB_STATE)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis rmteach.egg-info

# One-command entry points. Both create .venv with pinned versions on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: setup
	$(PY) -m dsr_ros.demo --out out/demo

test: setup
	$(PY) -m pytest -ra test

lint: setup
	$(PY) -m flake8 dsr_ros training benchmarks test launch setup.py

bench: setup
	$(PY) -m benchmarks --out out/benchmark

clean:
	rm -rf $(VENV) build install log out

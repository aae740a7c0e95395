# The two entry points the README promises; both do all their own set-up.
PYTHON ?= python3

.PHONY: demo test deps check

demo:  ## install Autopack and run the bundled example (scripted model replies)
	$(PYTHON) -m pip install --quiet .
	autopack demo

test: deps check  ## install system and development dependencies, then run every check

deps:
	bash scripts/install-deps.sh

check:
	bash scripts/check.sh

# The README's two commands: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
PY := .venv/bin/python

.PHONY: setup demo test test-slow bench clean
setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m snnchip.demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

clean:
	rm -rf .venv build *.egg-info

# The README's two set-up commands, as make targets.
.PHONY: demo test
demo:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/convzoo list && .venv/bin/convzoo info alexnet
test:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/ruff check . && .venv/bin/python -m pytest -q -n 2

# The README's two set-up commands, as make targets.
.PHONY: demo test
demo:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[plot]' && { ! id -u | grep -qx 0 || apt-get install -y -qq dataset-fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } || true; } >/dev/null 2>&1 && .venv/bin/convzoo train
test:
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/ruff check . && .venv/bin/python -m pytest -q -n 2

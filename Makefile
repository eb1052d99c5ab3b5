# The README's two commands:  `make demo`  (main job on the embedded default)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv app atlas clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

## Set up, then run the LAKE detector on the shipped demo data with the offline DINOv2-S/14.
demo: $(STAMP)
	$(BIN)/lake demo --output outputs/demo

## Set up, then run the whole test suite (data tests use LAKE_DATA_DIR when it is set).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Start the Streamlit explorer.
app: $(STAMP)
	$(BIN)/streamlit run app.py --server.fileWatcherType none

clean:
	rm -rf $(VENV) outputs .pytest_cache

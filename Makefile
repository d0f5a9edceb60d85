# Two entry points, each creating its own virtualenv on a fresh machine:
#   make demo   -- fit sparse maps on the built-in Kang 2018 data, print a table, write a PNG
#   make test   -- run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: demo test lint venv clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the CPU wheel first, so that the neural extra never pulls a CUDA build
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)" || \
	  $(BIN)/python -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu

$(VENV)/.installed: $(BIN)/activate setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test,plot,anndata,neural,dask]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/python -m skmonge demo --output skmonge_demo.png

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: venv
	$(BIN)/ruff check skmonge tests benchmarks doc

clean:
	rm -rf $(VENV) build dist *.egg-info

# make docs -- the Sphinx documentation into doc/_build/html, warnings as errors;
# sphinx-gallery runs the scripts in doc/examples (the slow ones in their quick
# setting) and generates their pages under doc/auto_examples
.PHONY: docs
$(VENV)/.docs-installed: $(VENV)/.installed setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	rm -rf doc/generated
	$(BIN)/python -m sphinx -W --keep-going -b html doc doc/_build/html

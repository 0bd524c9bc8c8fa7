# fastconv: every target works on a fresh machine: it creates .venv, installs the pinned
# packages and builds the extension first (each step only when its inputs changed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MAX_JOBS ?= $(shell nproc)
SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh') setup.py

.PHONY: bench test build lint format fuzz sanitize large clean

bench: build
	$(PY) -m benchmarks

test: build
	$(PY) -m pytest -q

build: $(VENV)/.stamp-build

$(VENV)/.stamp-deps: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.stamp-build: $(VENV)/.stamp-deps $(SOURCES)
	MAX_JOBS=$(MAX_JOBS) $(PY) -m pip install -v --no-build-isolation -e . > build.log 2>&1 \
	  || { tail -n 60 build.log; echo "build failed: full log in build.log"; exit 1; }
	grep -h "fastconv build:" build.log || true
	$(PY) -c "import fastconv, fastconv._build_info as b; print('built: cuda', b.CUDA_BUILT, '| cpu isa', fastconv.cpu_isa())"
	touch $@

# 10,000 random geometries against torch in float64, forward and all gradients.
fuzz: build
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests -k matches_torch

# Tensors past 2^31 elements (about 9 GB of memory, a minute).
large: build
	$(PY) -m pytest -q -m slow tests/system/test_reliability.py

# AddressSanitizer + UndefinedBehaviorSanitizer build (CPU only), then the test suite under
# it; the next `make build` restores the optimised build. Reports go to sanitize.log.<pid>
# (pytest's capture would swallow them with the process) and are printed on failure.
SAN_LIBS = $$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)
sanitize: $(VENV)/.stamp-deps
	rm -f $(VENV)/.stamp-build
	FASTCONV_SANITIZE=1 FASTCONV_CUDA=0 MAX_JOBS=$(MAX_JOBS) $(PY) -m pip install -q --no-build-isolation -e .
	rm -f sanitize.log.*
	LD_PRELOAD="$(SAN_LIBS)" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:log_path=$(CURDIR)/sanitize.log \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/sanitize.log FASTCONV_CUDA=0 \
	  $(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/system/test_bench.py \
	  -k "not compile and not export and not memory_growth" \
	  || { head -n 40 sanitize.log.* 2>/dev/null; echo "sanitize failed: reports in sanitize.log.*"; exit 1; }

lint: $(VENV)/.stamp-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/clang-format --dry-run -Werror $$(find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')

format: $(VENV)/.stamp-deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $$(find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')

clean:
	rm -rf build *.egg-info fastconv/_C*.so fastconv/_build_info.py $(VENV)/.stamp-build

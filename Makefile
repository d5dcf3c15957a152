# Two entry points for users: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Keep TF quiet and deterministic-ish on small CPUs.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: demo test test-slow install cpus clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The shipped default (saved_models/) -> TFLite fp32/fp16/dynamic/int8 + ONNX fp32/int8, each verified on
# the held-out digits, then every artifact benchmarked against the Keras reference. Re-runnable (--force).
DEMO_DIR := exports/demo
demo: $(STAMP)
	$(BIN)/reszoo export saved_models/resnet20_digits.keras --format tflite --format onnx \
		--precision fp32 --precision int8 --precision tflite:fp16 --precision tflite:dynamic \
		--data digits --latency-runs 10 --output $(DEMO_DIR) --force
	$(BIN)/reszoo bench $(DEMO_DIR) --runs 30 --warmup 5 --threads 1 --batch 8
	@echo "files: $(DEMO_DIR)/ (artifacts, manifest.json, report.md/json, bench.md/json/png)"

# The emulated CPU kinds (`--check-cpu`, `reszoo verify --cpu`): QEMU user mode (apt, root), an arm64 Debian root
# and aarch64 runtimes in ~/.cache/reszoo/cpus. Idempotent. The suite's emulated checks need it (CI runs it).
cpus: $(STAMP)
	$(BIN)/reszoo cpus install

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) exports .pytest_cache

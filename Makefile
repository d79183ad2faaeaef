# Thin wrapper around CMake. The two set-up commands are `make run` and
# `make test`; both install missing packages first (scripts/deps.sh).
BUILD ?= build/release
JOBS ?= 2
ARGS ?=

.PHONY: all deps deps-run build run test bench soak fuzz ci clean install amalgamation

all: build

deps-run:
	@scripts/deps.sh run

deps:
	@scripts/deps.sh

build: deps-run
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	@$(BUILD)/sluice-stream $(ARGS)

test: deps
	@scripts/test.sh

bench: deps build
	@bench/run.sh

soak: deps build
	@tests/soak.sh

# build/amalgamation/sluice.c + sluice.h: the core library as two files.
amalgamation:
	@python3 scripts/amalgamate.py

fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf build

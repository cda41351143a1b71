# SPDX-License-Identifier: MIT
# Thin wrapper over CMake. `make` builds into build/, `make test` runs every
# test, `make test SAN=1` does it with ASan+UBSan (in build/san/),
# `make memcheck` runs the C unit tests and the fuzz harnesses' seeds under
# valgrind, `make bench` runs the benchmarks, `make lint` checks style. Each
# first installs missing Debian packages through scripts/deps.sh.

MAKEFLAGS += --no-print-directory

SAN ?= 0
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

ifeq ($(SAN),1)
BUILD ?= build/san
CMAKE_FLAGS += -DLS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
else
BUILD ?= build
endif
CMAKE_FLAGS += -DLS_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)

.PHONY: all build deps configure test memcheck bench lint fuzz demo clean

all: build

deps:
	@scripts/deps.sh

configure: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Warnings are errors when testing.
test: WERROR = 1
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS); rc=$$?; \
	  $(CURDIR)/scripts/test-summary.sh Testing/Temporary/LastTest.log; exit $$rc

memcheck: build
	@scripts/memcheck.sh $(BUILD)

bench: build
	@scripts/bench.sh $(BUILD)

lint: configure
	@scripts/lint.sh $(BUILD)

# Coverage-guided fuzzing (clang's libFuzzer, ASan+UBSan) of the parsers on
# the request path, one target after another, FUZZ_SECONDS each; not part
# of make test. FUZZ_TARGETS="jwt policy_eval" for some. See tests/fuzz/README.md.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh --fuzz
	@tests/fuzz/build.sh $(FUZZ_TARGETS)
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The product on 127.0.0.1: lodestoned and lighttpd with the examples, logs
# followed, Ctrl-C stops both (PORT=8080 passes --port; see lodestone up --help).
PORT ?= 8080
demo: build
	@chmod go-w policies/demo-keys/* # git checks files out by the umask; key files must not be group-writable
	@$(BUILD)/bin/lodestone up --port $(PORT)

clean:
	rm -rf build

# make install [PREFIX=/usr/local] [DESTDIR=/staging]: builds (a build dir
# that is already configured keeps its options), then installs it with
# cmake --install under PREFIX; see docs/install.md.
PREFIX ?= /usr/local
.PHONY: install
install:
	@if [ -f $(BUILD)/CMakeCache.txt ]; then cmake --build $(BUILD) -j $(JOBS); \
	  else $(MAKE) build; fi
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix $(PREFIX)

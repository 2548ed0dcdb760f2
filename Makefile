# kube-oidc-spoa — one Makefile for everything.
#
#   make            release build: build/kube-oidc-spoa, examples, unit tests, bench tools
#   make asan       the same under ASan+UBSan in build/asan/ (what the tests run)
#   make test       install missing Debian packages, build, run unit + fuzz-smoke + integration + image tests
#   make test-image build both container images with podman (local stand-ins for the registry's base images) and
#                   run them against the test issuer and API server (tests/image; also part of make test)
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS (default 300) each
#   make bench      benchmarks (figures and ratios, never pass/fail on speed)
#   make demo       local stack on loopback with kubectl going through HAProxy
#
# Sources are found by wildcard so that adding a module needs no Makefile edit:
#   spoa/*.c            -> build/libspoa.a   (SPOP library; never includes src/)
#   src/*.c but main.c  -> build/libkos.a    (the agent's modules)
#   spoa/examples/*.c   -> build/<name>      (one program per file)
#   tests/unit/test_*.c -> build/tests/test_*  (cmocka; tests/unit/util_*.c linked into each)
#   tests/bench/*.c     -> build/bench/<name>
#   tests/fuzz/fuzz_*.c -> build/fuzz/fuzz_*  (clang libFuzzer; tests/fuzz/util_*.c linked into each)

BUILD    ?= build
SANITIZE ?= 0
FUZZ     ?= 0
CC       ?= cc
ifeq ($(origin CC),default)
CC := cc
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CPPFLAGS := -D_GNU_SOURCE -Ispoa -Isrc $(shell pkg-config --cflags libcurl libcjson 2>/dev/null || echo -I/usr/include/cjson)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -MMD -MP -pthread
LDLIBS   := -lev -lssl -lcrypto -lcjson -lcurl -lyaml -lpthread -lm

ifeq ($(SANITIZE),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS   := -O1 -g $(filter-out -O2 -O1 -O0 -g,$(CFLAGS)) $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)
endif
ifeq ($(FUZZ),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS   := -O1 -g $(filter-out -O2 -O1 -O0 -g,$(CFLAGS)) $(SANFLAGS) -fsanitize=fuzzer-no-link -DKOS_FUZZING=1
LDFLAGS  += $(SANFLAGS)
endif

SPOA_SRCS  := $(wildcard spoa/*.c)
KOS_SRCS   := $(filter-out src/main.c,$(wildcard src/*.c))
EX_SRCS    := $(wildcard spoa/examples/*.c)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_UTIL  := $(wildcard tests/unit/util_*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_UTIL  := $(wildcard tests/fuzz/util_*.c)

OBJ        := $(BUILD)/obj
SPOA_OBJS  := $(SPOA_SRCS:%.c=$(OBJ)/%.o)
KOS_OBJS   := $(KOS_SRCS:%.c=$(OBJ)/%.o)
LIBSPOA    := $(BUILD)/libspoa.a
LIBKOS     := $(BUILD)/libkos.a
AGENT      := $(BUILD)/kube-oidc-spoa
EXAMPLES   := $(EX_SRCS:spoa/examples/%.c=$(BUILD)/%)
UNITS      := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCHES    := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)
FUZZERS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/%)

.PHONY: all asan fuzz-build fuzz test test-image test-matrix bench demo deps clean compile_commands.json
.DEFAULT_GOAL := all

all: $(AGENT) $(EXAMPLES) $(UNITS) $(BENCHES)

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBSPOA): $(SPOA_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBKOS): $(KOS_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# main.c wires, the libraries compute; libkos may use libspoa, never the reverse.
$(AGENT): $(OBJ)/src/main.o $(LIBKOS) $(LIBSPOA)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: $(OBJ)/spoa/examples/%.o $(LIBSPOA)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests and fuzzers of the SPOP library (test_spo*, fuzz_spo*) link libspoa alone: it must not need src/.
$(BUILD)/tests/test_spo%: $(OBJ)/tests/unit/test_spo%.o $(UNIT_UTIL:%.c=$(OBJ)/%.o) $(LIBSPOA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/%: $(OBJ)/tests/unit/%.o $(UNIT_UTIL:%.c=$(OBJ)/%.o) $(LIBKOS) $(LIBSPOA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/bench/spo%: $(OBJ)/tests/bench/spo%.o $(LIBSPOA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(OBJ)/tests/bench/%.o $(LIBKOS) $(LIBSPOA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz_spo%: $(OBJ)/tests/fuzz/fuzz_spo%.o $(FUZZ_UTIL:%.c=$(OBJ)/%.o) $(LIBSPOA)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz_%: $(OBJ)/tests/fuzz/fuzz_%.o $(FUZZ_UTIL:%.c=$(OBJ)/%.o) $(LIBKOS) $(LIBSPOA)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzzers: $(FUZZERS)

asan:
	$(MAKE) BUILD=build/asan SANITIZE=1 all

fuzz-build:
	$(MAKE) BUILD=build/fuzz FUZZ=1 CC=clang fuzzers

deps:
	scripts/deps.sh

# The README's test command: everything a fresh Debian 12 machine needs, then every test.
# HAProxy branches the integration suite runs against: the machine's 2.6 plus these Debian suites' packages,
# fetched once into build/haproxy/ (scripts/haproxy-versions.py). test-matrix runs all of them.
TEST_SUITES   ?= experimental
NPROC         := $(shell nproc 2>/dev/null || echo 2)
MATRIX_SUITES ?= trixie,sid,experimental
# TEST_NOLUA=1 (the default) adds an HAProxy built without Lua from Debian's haproxy source package
# (scripts/haproxy-nolua.py: about 70 s the first time on 2 cores, then cached in build/haproxy/nolua/) to the
# HAProxys of test and test-matrix, labelled e.g. 3.0-nolua: the integration suite passing on it proves conf/ needs
# no Lua (contract v2). TEST_NOLUA=0 leaves it out.
TEST_NOLUA    ?= 1
NOLUA_FLAG    := $(if $(filter 1,$(TEST_NOLUA)),--nolua)
# The worst-case-ACK stress test (tests/integration/test_big_ack_stress.py) runs on these suites' HAProxys only
# (3.2 and 3.4, whose SPOP multiplexer has the big-ACK stall), not the whole suite: KOS_STRESS_HAPROXY_BINS.
STRESS_SUITES ?= sid,experimental

test: deps
	scripts/build.sh
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) asan
	$(MAKE) -j$(NPROC) fuzz-build
	bins="$$(/usr/bin/python3 scripts/haproxy-versions.py --bins --suites $(TEST_SUITES) $(NOLUA_FLAG))" && \
	stress="$$(/usr/bin/python3 scripts/haproxy-versions.py --bins --no-system --suites $(STRESS_SUITES))" && \
		KOS_HAPROXY_BINS="$$bins" KOS_STRESS_HAPROXY_BINS="$$stress" /usr/bin/python3 tests/run_all.py

test-matrix: deps
	$(MAKE) -j$(NPROC) all
	$(MAKE) -j$(NPROC) asan
	$(MAKE) -j$(NPROC) fuzz-build
	bins="$$(/usr/bin/python3 scripts/haproxy-versions.py --bins --suites $(MATRIX_SUITES) $(NOLUA_FLAG))" && \
	stress="$$(/usr/bin/python3 scripts/haproxy-versions.py --bins --no-system --suites $(STRESS_SUITES))" && \
		KOS_HAPROXY_BINS="$$bins" KOS_STRESS_HAPROXY_BINS="$$stress" KOS_MATRIX_IDLE_SECONDS=120 \
		/usr/bin/python3 tests/run_all.py

# The images need no local build: the Dockerfile compiles the agent itself (scripts/images.py, tests/image).
test-image: deps
	/usr/bin/python3 tests/run_all.py --only image

FUZZ_SECONDS ?= 300
fuzz: deps fuzz-build
	KOS_FUZZ_SECONDS=$(FUZZ_SECONDS) /usr/bin/python3 tests/run_all.py --only fuzz

bench: deps all
	tests/bench/run.sh

demo: deps all
	scripts/demo.sh

compile_commands.json:
	$(MAKE) clean && bear -- $(MAKE) all

clean:
	rm -rf build

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

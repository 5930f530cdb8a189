# cloudmount: build, test and demo.
#
#   make build   bin/cloudmount
#   make install /usr/local/bin/cloudmount (for fstab mounts) and the man
#                page /usr/local/share/man/man1/cloudmount.1
#   make man     bin/cloudmount.1, made from the same source as --help
#   make test    install what the tests need (Debian, and Tahoe-LAFS from
#                PyPI: make tahoe-venv), vet, unit tests with -race, a
#                bounded run of the fuzz targets of server replies, then
#                the integration tests against real servers
#   make tahoe-venv  tahoe-lafs in a virtualenv for the Tahoe tests
#   make fuzz    the fuzz targets of server replies, FUZZTIME (5s) each
#   make soak    the differential tests with 100 times more operations
#   make demo    serve a temp folder over WebDAV and mount it on ./demo-mount
#   make demo-stop

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := bin/cloudmount

# Debian packages the tests use: FUSE, the servers and the tools they drive
# (gcc and libc6-dev because -race needs cgo).
APT_PACKAGES := fuse3 apache2 apache2-utils nginx-light libnginx-mod-http-dav-ext rclone rsync attr curl ca-certificates gcc libc6-dev openssh-server openssh-client
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

INTEGRATION_TIMEOUT ?= 60m
INTEGRATION_FLAGS ?=
TEST_LOG := bin/integration-test.log

DEMO_DIR := .demo
DEMO_MNT := demo-mount

.PHONY: all build man install deps tahoe-venv vet unit fuzz integration test demo demo-deps demo-stop clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cloudmount

# mount(8) runs fuse.cloudmount entries through mount.fuse3 with a fixed
# PATH, so fstab mounts need the binary in a standard place.
PREFIX ?= /usr/local
MAN := bin/cloudmount.1

# The man page is what `cloudmount help --man` prints: the help texts and
# flag lists in roff.
man: build
	$(BIN) help --man > $(MAN).tmp && mv $(MAN).tmp $(MAN)

install: build man
	$(SUDO) install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/cloudmount
	$(SUDO) install -D -m 0644 $(MAN) $(DESTDIR)$(PREFIX)/share/man/man1/cloudmount.1

# Installs only the missing packages; apt-get update only if one is missing.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
	  echo "deps: $(APT_PACKAGES) already installed"; \
	fi
	@# Debian's fuse3 udev rule makes /dev/fuse 0666 so that ordinary users can
	@# mount; containers without udev often have it 0600. In CI, set it as
	@# udev would (the unprivileged-mount test needs it).
	@if [ -n "$${CI:-}" ] && [ -c /dev/fuse ] && [ "$$(stat -c %a /dev/fuse)" != 666 ]; then \
	  echo "deps: chmod 0666 /dev/fuse (as Debian's fuse3 udev rule does)"; $(SUDO) chmod 0666 /dev/fuse; fi
	@command -v $(GO) >/dev/null || { echo "deps: $(GO) not found: install Go (see go.mod for the version)"; exit 1; }
	$(GO) mod download

# Tahoe-LAFS for the Tahoe integration tests (a grid of four nodes on
# 127.0.0.1). Debian has no package, so tahoe-lafs comes from PyPI into a
# virtualenv beside Go's build cache (outside the work tree: it survives a
# fresh clone and make clean), with its dependencies pinned by
# integration/testdata/tahoe-constraints.txt. Nothing happens when the
# virtualenv's tahoe already runs and is this version; a broken one is made
# anew. python3 -m venv needs Debian's python3-venv, and one dependency
# (netifaces) has no wheel and is compiled (gcc, python3-dev); they are
# installed as deps installs packages. The tests run CLOUDMOUNT_TAHOE
# (exported here), else tahoe from PATH.
TAHOE_VERSION := 1.20.0
TAHOE_CONSTRAINTS := integration/testdata/tahoe-constraints.txt
TAHOE_APT_PACKAGES := python3 python3-venv python3-dev gcc libc6-dev
TAHOE_PYTHON ?= /usr/bin/python3
ifndef TAHOE_VENV
TAHOE_VENV := $(shell d=$$($(GO) env GOCACHE 2>/dev/null || true); \
  if [ "$${d#/}" != "$$d" ]; then dirname "$$d"; else echo "$${XDG_CACHE_HOME:-$$HOME/.cache}"; fi)/cloudmount-tahoe-venv-$(TAHOE_VERSION)
endif
CLOUDMOUNT_TAHOE ?= $(TAHOE_VENV)/bin/tahoe
export CLOUDMOUNT_TAHOE

tahoe-venv:
	@tahoe="$(TAHOE_VENV)/bin/tahoe"; \
	if "$$tahoe" --version 2>/dev/null | grep -qx 'tahoe-lafs/$(TAHOE_VERSION)'; then \
	  echo "tahoe-venv: $$tahoe is tahoe-lafs $(TAHOE_VERSION)"; exit 0; fi; \
	missing=""; \
	for p in $(TAHOE_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "tahoe-venv: installing$$missing"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi; \
	echo "tahoe-venv: installing tahoe-lafs $(TAHOE_VERSION) from PyPI into $(TAHOE_VENV)"; \
	start=$$(date +%s); \
	rm -rf "$(TAHOE_VENV)"; mkdir -p "$$(dirname "$(TAHOE_VENV)")"; \
	if ! { $(TAHOE_PYTHON) -m venv "$(TAHOE_VENV)" && \
	       "$(TAHOE_VENV)/bin/pip" install --disable-pip-version-check --no-input -q \
	         -c $(TAHOE_CONSTRAINTS) "tahoe-lafs==$(TAHOE_VERSION)" && \
	       "$$tahoe" --version | grep -qx 'tahoe-lafs/$(TAHOE_VERSION)'; }; then \
	  rm -rf "$(TAHOE_VENV)"; echo "tahoe-venv: the installation failed"; exit 1; fi; \
	echo "tahoe-venv: $$tahoe is tahoe-lafs $(TAHOE_VERSION) (installed in $$(( $$(date +%s) - start ))s)"

vet:
	$(GO) vet ./...
	$(GO) vet -tags bench ./integration/

# The hostile-server listing test reads 100,000 entries with the default
# bounds and measures the heap: it runs without -race, which slows
# encoding/xml tenfold and changes what the heap holds.
unit:
	$(GO) test -race $$($(GO) list ./... | grep -v '/integration$$')
	$(GO) test -count=1 -run '^TestHostileListingIsBounded$$' ./backends/webdav/

# Each fuzz target (package:name) for FUZZTIME (-fuzz takes one target per
# run): the WebDAV reply parsers and the TLS pin parser. New failing inputs
# land in the package's testdata/fuzz/.
FUZZTIME ?= 5s
FUZZ_TARGETS := backends/webdav:FuzzParseMultistatus backends/webdav:FuzzProppatchReply \
  backends/webdav:FuzzProppatchStatus backends/webdav:FuzzOCChecksums backends/webdav:FuzzNCStatus \
  backends/webdav:FuzzNCCapabilities backends/webdav:FuzzNCPrincipal backends/tlsclient:FuzzParsePins
fuzz:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; f=$${t#*:}; \
	  echo "fuzz: $$f ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./$$pkg/ || exit 1; \
	done

# The integration tests build their own binary, start Apache and rclone,
# and mount through FUSE (as root in CI). The -v output goes to the
# terminal and to $(TEST_LOG); the summary at the end repeats the failures,
# the FIGURE lines and the final ok/FAIL line.
integration:
	@mkdir -p $(dir $(TEST_LOG))
	@status=0; \
	$(GO) test -v -count=1 -timeout $(INTEGRATION_TIMEOUT) $(INTEGRATION_FLAGS) ./integration/ 2>&1 | tee $(TEST_LOG) || status=$$?; \
	echo; echo "=== integration summary (full log: $(TEST_LOG))"; \
	grep -E '^\s*--- (FAIL|SKIP)|FIGURE:|^(ok|FAIL|PASS)\b' $(TEST_LOG) || true; \
	exit $$status

test: deps tahoe-venv build vet unit fuzz integration

# make soak: the differential tests (fs/difftest) with 100 times more
# operations, in-process and against Apache and rclone serve. SOAK_SCALE
# changes the factor; DIFFTEST_SEED=N replays a failure.
SOAK_SCALE ?= 100
.PHONY: soak
soak: deps build
	CRASHTEST_SCALE=$(SOAK_SCALE) $(GO) test -count=1 -timeout 3h -v -run '^TestJournalSurvivesPowerCuts$$' ./cache/
	DIFFTEST_SCALE=$(SOAK_SCALE) $(GO) test -count=1 -timeout 3h -v -run '^TestDifferential' ./fs/
	DIFFTEST_SCALE=$(SOAK_SCALE) $(GO) test -count=1 -timeout 3h -v -run '^TestDifferential$$' ./integration/

# make demo: serve a temporary folder with the embedded WebDAV server and
# mount it on ./demo-mount. make demo-stop ends both.
# What the demo needs of the system: fuse3 (fusermount3, /dev/fuse for users).
DEMO_APT_PACKAGES := fuse3

demo-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(DEMO_APT_PACKAGES)"

demo: demo-deps build
	@mkdir -p $(DEMO_DIR)/data $(DEMO_MNT)
	@if [ -f $(DEMO_DIR)/serve.pid ] && kill -0 "$$(cat $(DEMO_DIR)/serve.pid)" 2>/dev/null; then \
	  echo "demo: already running (make demo-stop first)"; exit 1; fi
	@port=8580; \
	while (exec 3<>/dev/tcp/127.0.0.1/$$port) 2>/dev/null; do port=$$((port+1)); done; \
	printf 'Hello from cloudmount!\n' > $(DEMO_DIR)/data/hello.txt; \
	nohup $(BIN) serve webdav $(DEMO_DIR)/data --addr 127.0.0.1:$$port >$(DEMO_DIR)/serve.log 2>&1 & \
	echo $$! > $(DEMO_DIR)/serve.pid; \
	echo "http://127.0.0.1:$$port/" > $(DEMO_DIR)/url; \
	for i in $$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$$port) 2>/dev/null && break; sleep 0.1; done; \
	$(BIN) mount "http://127.0.0.1:$$port/" $(DEMO_MNT) --cache-dir $(DEMO_DIR)/cache --log-file $(DEMO_DIR)/mount.log || { \
	  kill "$$(cat $(DEMO_DIR)/serve.pid)"; rm -f $(DEMO_DIR)/serve.pid; \
	  echo "demo: mount failed; see $(DEMO_DIR)/mount.log"; exit 1; }; \
	echo; \
	echo "cloudmount demo: $(DEMO_DIR)/data is served at http://127.0.0.1:$$port/"; \
	echo "and mounted on ./$(DEMO_MNT). Try:"; \
	echo "  ls -l $(DEMO_MNT)/ && cat $(DEMO_MNT)/hello.txt"; \
	echo "  cp -a /etc/hosts $(DEMO_MNT)/ && $(BIN) status $(DEMO_MNT)"; \
	echo "  $(BIN) sync $(DEMO_MNT) && ls -l $(DEMO_DIR)/data/"; \
	echo "  mkdir $(DEMO_MNT)/backup && rsync -a --stats /usr/share/doc/bash/ $(DEMO_MNT)/backup/   (run it twice)"; \
	echo "  df -h $(DEMO_MNT)"; \
	echo "Logs: $(DEMO_DIR)/serve.log, $(DEMO_DIR)/mount.log"; \
	echo "Stop: make demo-stop"

demo-stop:
	@if grep -qs " $(CURDIR)/$(DEMO_MNT) " /proc/mounts; then \
	  $(BIN) sync --timeout 60s $(DEMO_MNT) || true; \
	  $(BIN) unmount $(DEMO_MNT) || fusermount3 -u $(DEMO_MNT); \
	  echo "demo: unmounted ./$(DEMO_MNT)"; fi
	@if [ -f $(DEMO_DIR)/serve.pid ]; then \
	  pid=$$(cat $(DEMO_DIR)/serve.pid); \
	  if kill -0 "$$pid" 2>/dev/null; then kill "$$pid"; echo "demo: stopped the server (pid $$pid)"; fi; \
	  rm -f $(DEMO_DIR)/serve.pid; fi
	@rmdir $(DEMO_MNT) 2>/dev/null || true
	@echo "demo: stopped (the served files stay in $(DEMO_DIR)/data)"

clean: demo-stop
	rm -rf bin $(DEMO_DIR)

# ---------------------------------------------------------------------------
# Benchmarks (issue 5): cloudmount next to davfs2, sshfs and rclone mount on
# the same loopback servers, with local disk, curl and sftp/scp as limits.
# Writes docs/bench.md and docs/bench.png. The code is
# integration/bench_*_test.go (build tag "bench"); it reuses the harness.
#
#   make bench                  the sizes of the issue (an hour or more)
#   make bench QUICK=1          small sizes (64 MiB, 200 files, ...): about 15 minutes, most
#                               of it waiting for davfs2 and rclone mount to upload
#   make bench-baseline         cloudmount alone, compared with the saved
#                               baseline integration/testdata/bench-baseline.json
#                               (= make bench BASELINE=1; QUICK=1 for the quick one)
#   make bench SAVE_BASELINE=1  also store this run's cloudmount medians as the baseline
#   REPS=N (default 3); STRICT=1: a regression against the baseline fails;
#   SYSTEMS=a,b / WORKLOADS=a,b limit a run while developing (output in bin/);
#                               the Tahoe systems are cloudmount-tahoe and sshfs-tahoe
#                               (small files and rsync only), e.g.
#                               make bench QUICK=1 SYSTEMS='cloudmount-tahoe sshfs-tahoe local' WORKLOADS='small rsync' REPS=1
# With CI set, a peer that cannot be run is a failure; otherwise the report
# lists it as not available, with the reason.

BENCH_APT_PACKAGES := fuse3 apache2 apache2-utils rclone davfs2 sshfs openssh-server openssh-client rsync curl tar
BENCH_TIMEOUT ?= 3h
BENCH_LOG := bin/bench.log
bench_on = $(if $(filter-out 0 false,$(1)),1,)

.PHONY: bench bench-baseline bench-deps

# Installs only the missing packages, like deps.
bench-deps:
	@missing=""; \
	for p in $(BENCH_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "bench-deps: installing$$missing"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
	  echo "bench-deps: $(BENCH_APT_PACKAGES) already installed"; \
	fi
	@command -v $(GO) >/dev/null || { echo "bench-deps: $(GO) not found: install Go (see go.mod for the version)"; exit 1; }

# The Tahoe systems (cloudmount-tahoe, sshfs-tahoe) need the grid's tahoe.
BENCH_NEEDS_TAHOE := $(if $(SYSTEMS),$(findstring tahoe,$(SYSTEMS)),all)

bench: bench-deps $(if $(BENCH_NEEDS_TAHOE),tahoe-venv)
	@mkdir -p bin
	BENCH_SIZE=$(if $(call bench_on,$(QUICK)),quick,full) \
	BENCH_REPS=$(REPS) \
	BENCH_BASELINE=$(call bench_on,$(BASELINE)) \
	BENCH_SAVE_BASELINE=$(call bench_on,$(SAVE_BASELINE)) \
	BENCH_STRICT=$(call bench_on,$(STRICT)) \
	BENCH_SYSTEMS=$(SYSTEMS) BENCH_WORKLOADS=$(WORKLOADS) \
	$(GO) test -tags bench -run '^TestBench$$' -count=1 -timeout $(BENCH_TIMEOUT) -v ./integration/ 2>&1 | tee $(BENCH_LOG)

bench-baseline:
	$(MAKE) bench BASELINE=1

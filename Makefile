# vmm: `make demo` boots the default guest and resizes it live; `make test`
# runs every test, the end-to-end suites on real KVM included. Both install
# what is missing (scripts/deps.sh) and cache downloads in .cache/.
SHELL := /bin/bash
CACHE := .cache
BUILD := .build
GO    ?= go
# Static binaries: they run inside the KVM host, which has no C library.
export CGO_ENABLED := 0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The Go heap without transparent huge pages (the runtime's GODEBUG
# disablethp=1, made the binaries' default): where THP is "always" (Debian's
# kernels) each touched 2 MiB of heap is resident whole, 2-5 MiB of an idle
# vmm's overhead (docs/performance.md). Guest RAM keeps its huge pages (vmm
# asks for them with madvise). A GODEBUG in the environment still wins.
GO_LDFLAGS := -X=runtime.godebugDefault=disablethp=1
# The e2e package needs KVM; the unit pass runs everything else.
UNIT_PKGS = $$($(GO) list ./... | grep -v '/e2e$$')
# Where the kvmhost harness runs things: auto, direct or nested.
KVMHOST_MODE ?= auto
E2E_TIMEOUT  ?= 20m
GINKGO_FLAGS ?=

.PHONY: all deps images build emulator unit fuzz lint e2e stress test demo bench clean

all: build

deps:
	@scripts/deps.sh

images: deps
	@images/build.sh $(CACHE)

build: deps
	@mkdir -p $(BUILD)
	$(GO) build -ldflags='$(GO_LDFLAGS)' -o $(BUILD)/ ./cmd/...
	$(GO) build -o $(BUILD)/kvmhost ./e2e/cmd/kvmhost
	$(GO) build -o $(BUILD)/e2erun ./e2e/cmd/e2erun
	$(GO) test -c -o $(BUILD)/e2e.test ./e2e
	$(GO) build -o $(BUILD)/ginkgo github.com/onsi/ginkgo/v2/ginkgo # the tool in go.mod

# The emulator of the KVM host, when one is needed (no usable /dev/kvm):
# Debian's QEMU rebuilt with images/emulator/tcg-fixes.patch, cached in
# ~/.cache/vmm/emulator; its path goes to .build/emulator, which the e2e,
# demo and bench scripts pass on (KVMHOST_QEMU overrides it, and
# VMM_EMULATOR=stock picks Debian's binary).
emulator: build
	@if [ "$$($(BUILD)/kvmhost -mode $(KVMHOST_MODE) -print-mode)" = nested ]; then \
	  images/emulator/build.sh >$(BUILD)/emulator; else : >$(BUILD)/emulator; fi

lint: deps
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$bad" ]; then echo "gofmt would change: $$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit: deps
	$(GO) test $(UNIT_PKGS)

# Short fuzz runs of every Fuzz target (a fixed time each).
fuzz: deps
	@scripts/fuzz.sh 5s

# The end-to-end suites, on real KVM (docs/testing.md). They run as one
# KVM-host boot per group of labels (e2e/runner): a KVM host that breaks
# under emulation costs one group, and only a failure recognised as the
# emulation's by its signature is retried, and reported as such.
E2E_GROUPS ?= core api devices memory cpu scenarios distro
export KVMHOST_MODE E2E_TIMEOUT GINKGO_FLAGS BUILD CACHE E2E_EMULATION_RETRIES E2E_BUDGET_MIN E2E_HOST_ATTEMPTS E2E_HOST_CPUS E2E_HOST_APPEND
e2e: images build emulator
	@rm -rf $(BUILD)/results; KVMHOST_QEMU=$${KVMHOST_QEMU:-$$(cat $(BUILD)/emulator)} $(BUILD)/e2erun $(E2E_GROUPS)

# The stress specs at full size, once each, without retries of any kind, in
# a KVM host per group: 30 cycles of 2 -> 8 -> 2 vCPUs, 100 MiB over TCP,
# 100 MiB each way over vsock, 60 s of a guest writing random values to
# every device register, and 64 API clients' 10,000 requests.
# make test runs them smaller.
stress: images build emulator
	@rm -rf $(BUILD)/results; KVMHOST_QEMU=$${KVMHOST_QEMU:-$$(cat $(BUILD)/emulator)} \
	  VMM_STRESS_CYCLES=30 VMM_STRESS_MAX=8 VMM_NET_MIB=100 VMM_VSOCK_MIB=100 VMM_POKE_SECONDS=60 VMM_API_REQUESTS=10000 E2E_EMULATION_RETRIES=0 E2E_HOST_ATTEMPTS=1 \
	  GINKGO_FLAGS='-ginkgo.focus=cpu_stress|MiB.over.TCP|MiB.each.way|every.device.register|thousands.of.requests' $(BUILD)/e2erun core api cpu devices

test: lint unit fuzz e2e

demo: images build emulator
	@scripts/demo.sh

# Benchmarks beside QEMU in one KVM host (not part of make test; the
# report code's unit tests are): bench/results.md, .json and chart.png.
bench: images build emulator
	@scripts/bench.sh

clean:
	rm -rf $(BUILD)

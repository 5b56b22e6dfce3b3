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
# The e2e package needs KVM; the unit pass runs everything else.
UNIT_PKGS = $$($(GO) list ./... | grep -v '^vmm/e2e$$')
# Where the kvmhost harness runs things: auto, direct or nested.
KVMHOST_MODE ?= auto
E2E_TIMEOUT  ?= 25m
GINKGO_FLAGS ?=

.PHONY: all deps images build unit fuzz lint e2e test demo bench clean

all: build

deps:
	@scripts/deps.sh

images: deps
	@images/build.sh $(CACHE)

build: deps
	@mkdir -p $(BUILD)
	$(GO) build -o $(BUILD)/ ./cmd/...
	$(GO) build -o $(BUILD)/kvmhost ./e2e/cmd/kvmhost
	$(GO) test -c -o $(BUILD)/e2e.test ./e2e

lint: deps
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$bad" ]; then echo "gofmt would change: $$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit: deps
	$(GO) test $(UNIT_PKGS)

# Short fuzz runs of every Fuzz target (a fixed time each).
fuzz: deps
	@scripts/fuzz.sh 10s

# The end-to-end suites, on real KVM (see README: how the KVM host works).
e2e: images build
	@rm -rf $(BUILD)/results
	$(BUILD)/kvmhost -mode $(KVMHOST_MODE) -timeout $(E2E_TIMEOUT) -results $(BUILD)/results \
	  -file $(BUILD)/e2e.test:bin/e2e.test \
	  $$(for f in $(BUILD)/vmm $(BUILD)/vmmctl; do [ -f $$f ] && echo "-file $$f:bin/$${f##*/}"; done) \
	  -file $(CACHE)/guest/bzImage:guest/bzImage \
	  -file $(CACHE)/guest/initramfs.cpio.gz:guest/initramfs.cpio.gz \
	  -dir scenarios:scenarios -dir e2e/testdata:testdata \
	  -env 'VMM_BIN=$$PAYLOAD/bin/vmm' -env 'VMMCTL_BIN=$$PAYLOAD/bin/vmmctl' \
	  -env 'VMM_GUEST_KERNEL=$$PAYLOAD/guest/bzImage' \
	  -env 'VMM_GUEST_INITRAMFS=$$PAYLOAD/guest/initramfs.cpio.gz' \
	  -env 'VMM_SCENARIOS=$$PAYLOAD/scenarios' -env 'VMM_TESTDATA=$$PAYLOAD/testdata' \
	  -- ./bin/e2e.test -test.v -ginkgo.v -ginkgo.no-color -ginkgo.timeout=20m \
	     '-ginkgo.junit-report=$$RESULTS/junit.xml' $(GINKGO_FLAGS)

test: lint unit fuzz e2e

demo: images build
	@scripts/demo.sh

bench: images build
	@echo "make bench: not yet (issue 10)"; exit 1

clean:
	rm -rf $(BUILD)

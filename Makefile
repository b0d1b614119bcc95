# sgwarden: the commands that matter. `make test` and `make demo` work on a fresh machine
# with only the Rust toolchain and Python 3.11: they install what they need.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
CARGO ?= cargo

.PHONY: help test demo bench mutants emulator emulator-lock fmt lint infra-lint unit docs release clean mail-png package deploy

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# The local AWS emulator (moto and its dependencies, all pinned) lives in a project-local
# virtualenv, never in the system Python. Reinstalled only when the lock file changes.
$(VENV_STAMP): tests/emulator/requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/emulator/requirements.lock
	touch $@

emulator: $(VENV_STAMP) ## install the local AWS emulator into .venv

emulator-lock: ## re-resolve the emulator's pins from requirements.txt
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet -r tests/emulator/requirements.txt
	{ echo "# Every package of the emulator's virtualenv, pinned (pip freeze of requirements.txt)."; \
	  echo "# Regenerate with: make emulator-lock"; $(VENV)-lock/bin/pip freeze; } > tests/emulator/requirements.lock
	rm -rf $(VENV)-lock

fmt: ## check formatting
	$(CARGO) fmt --all -- --check

lint: ## clippy, warnings are errors
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

infra-lint: $(VENV_STAMP) ## cfn-lint every template in infra/
	$(VENV)/bin/cfn-lint infra/*.yaml

# The end-to-end tests drive the real Lambda binaries, so they are built first, with
# --all-targets: that resolves features as `cargo test` does (dev-dependencies included), so
# the test run reuses every crate instead of compiling the AWS SDK a second time. `make demo`
# builds with the same command, so whichever of the two runs second builds nothing again.
BUILD := $(CARGO) build --workspace --all-targets --locked
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
unit: $(VENV_STAMP) ## unit, property and end-to-end tests
	$(BUILD)
	$(CARGO) test --workspace --locked

test: fmt docs lint infra-lint unit ## everything CI runs: fmt, clippy, cfn-lint, all tests, the guide

# The guide (docs/guide, mdBook) is built with a pinned mdBook, installed into .tools (git-ignored)
# only when that version is not there. Without default features it has no serve/watch web
# server to compile; search stays. Then docs/guide/check.py checks its links, and every
# setting, make target and sgwarden command it names, against the code.
MDBOOK_VERSION := 0.5.4
MDBOOK := .tools/bin/mdbook
docs: ## build the guide into target/book and check its links and names
	@$(MDBOOK) --version 2>/dev/null | grep -qx 'mdbook v$(MDBOOK_VERSION)' \
	  || $(CARGO) install --locked --quiet mdbook@$(MDBOOK_VERSION) --no-default-features --features search --root .tools
	$(MDBOOK) build docs/guide
	$(PYTHON) docs/guide/check.py

demo: $(VENV_STAMP) ## run sgwarden against the local emulator in a small two-region world
	$(BUILD) --quiet
	$(TARGET_DIR)/debug/sgwarden-demo

# The peer the sweep is compared with (Cloud Custodian, pinned), in its own virtualenv.
PEER_VENV := .venv-peer
$(PEER_VENV)/.installed: tests/bench-peer.lock
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/bench-peer.lock
	touch $@

# The revert-ingress, sweep and fanout benches run the release binary (the profile `make package`
# ships), so it is built first.
bench: $(VENV_STAMP) $(PEER_VENV)/.installed ## benchmarks: parse/plan, each function end to end, the sweep beside Cloud Custodian
	$(CARGO) bench --locked -p sgwarden-core --bench core
	$(CARGO) bench --locked -p sgwarden-tests --bench asg_sync
	$(CARGO) build --release --locked -p revert-ingress
	$(CARGO) bench --locked -p sgwarden-tests --bench revert_ingress
	$(CARGO) bench --locked -p sgwarden-tests --bench sweep
	$(CARGO) bench --locked -p sgwarden-tests --bench fanout
	$(CARGO) bench --locked -p sgwarden-tests --bench notify_owner

# Mutation testing of the security core: cargo-mutants (pinned) changes sgwarden-core's code
# one mutant at a time and runs the core's own tests; a mutant they do not notice is a rule
# no test states. Not part of `make test` (about 12 minutes on 2 cores): see the guide's
# contributing chapter.
CARGO_MUTANTS_VERSION := 27.1.0
MUTANTS_MINIMUM := 95
SGWARDEN_REAL_EVENTS ?= $(abspath ../shared/real-events)
mutants: ## mutation testing of sgwarden-core (cargo-mutants, pinned); prints the score
	@cargo mutants --version 2>/dev/null | grep -qx 'cargo-mutants $(CARGO_MUTANTS_VERSION)' \
	  || $(CARGO) install --locked cargo-mutants@$(CARGO_MUTANTS_VERSION)
	@# cargo-mutants exits 2 when mutants are missed and 3 on timeouts: the score decides.
	SGWARDEN_REAL_EVENTS=$(SGWARDEN_REAL_EVENTS) $(CARGO) mutants -p sgwarden-core -j 2 \
	  --output target/mutants $(MUTANTS_ARGS); rc=$$?; [ $$rc -le 3 ] && [ $$rc -ne 1 ] || exit $$rc
	$(PYTHON) tests/mutants_score.py target/mutants/mutants.out/outcomes.json $(MUTANTS_MINIMUM)

# The guide's picture of an owner's mail: the demo writes the mail's HTML part, headless
# Chromium (Debian's `chromium` package, not needed by anything else) renders it.
CHROMIUM ?= chromium
mail-png: demo ## render the demo's owner mail to docs/guide/src/images/notify-owner-mail.png (needs chromium)
	$(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	  --disable-background-networking --disable-component-update --disable-sync \
	  --user-data-dir=$$(mktemp -d) --hide-scrollbars --window-size=800,480 \
	  --screenshot=$(CURDIR)/docs/guide/src/images/notify-owner-mail.png file://$(CURDIR)/target/demo/notify-owner-mail.html

# Lambda packages, built with the size-tuned release profile (Cargo.toml). cargo-lambda and
# zig come pinned from infra/package-tools.lock into their own virtualenv, never into
# `make test`'s. The host's toolchain targets x86_64 only; ARCH=arm64 builds for Graviton once
# `rustup target add aarch64-unknown-linux-gnu` is done (zig links it).
PACKAGE_VENV := .venv-package
FUNCTIONS := asg-sync revert-ingress notify-owner
ARCH ?= x86_64
LAMBDA_ARCH_FLAG := $(if $(filter arm64,$(ARCH)),--arm64,--x86-64 --compiler cargo)
# Identical code folding in the linker (rustc links with lld on x86_64 Linux): machine code
# the SDK's generics produce more than once is kept once. Measured on notify-owner: binary
# 7.34 -> 7.19 MB, zip 3.02 -> 2.99 MB. Lambda builds only (package, deploy): `make test`
# does not pay the link time. Not passed to zig for arm64, whose linker was not measured.
comma := ,
LAMBDA_RUSTFLAGS := $(if $(filter arm64,$(ARCH)),,-C link-arg=-Wl$(comma)--icf=safe)
$(PACKAGE_VENV)/.installed: infra/package-tools.lock
	$(PYTHON) -m venv $(PACKAGE_VENV)
	$(PACKAGE_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/package-tools.lock
	touch $@

package: $(PACKAGE_VENV)/.installed ## build every function for Lambda (ARCH=arm64 for Graviton), print zip sizes
	PATH="$(CURDIR)/$(PACKAGE_VENV)/bin:$$PATH" RUSTFLAGS="$(LAMBDA_RUSTFLAGS)" $(CARGO) lambda build --release --locked \
	  $(LAMBDA_ARCH_FLAG) --output-format zip $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do printf '%-16s %s bytes\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap.zip); done

deploy: ## deploy SAM stacks: STACKS="revert-ingress notify-owner" REGIONS="us-east-1 eu-west-1" (DRY_RUN=1 prints)
	RUSTFLAGS="$(LAMBDA_RUSTFLAGS)" bash infra/deploy.sh

release: ## optimised build of the whole workspace
	$(CARGO) build --release --workspace --locked

clean: ## remove build output and the emulator
	$(CARGO) clean
	rm -rf $(VENV) $(PEER_VENV) $(PACKAGE_VENV)

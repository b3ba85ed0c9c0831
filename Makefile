# The two commands of the README:
#   make demo   bring up the local lab and run provision against it
#   make test   every test: formatting, lints, unit, CLI and lab tests (as root; installs what the lab needs)
CARGO ?= cargo
PROVISION = ./target/debug/provision -i lab/inventory.yaml

.PHONY: demo test lab-up lab-down

demo: lab-up
	$(CARGO) build --locked --quiet
	$(PROVISION) debug exec all -- sh -c 'echo "$$(hostname): systemd $$(systemctl is-system-running), docker $$(docker version -f "{{.Server.Version}}")"'
	$(PROVISION) apply --diff
	@echo "== a second apply has nothing to do:"
	$(PROVISION) apply

test: lab-up
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) test --locked

lab-up:
	bash lab/lab up

lab-down:
	bash lab/lab down

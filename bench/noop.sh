#!/usr/bin/env bash
# Times a no-op `provision apply` against the lab: for each size N (default "2 20": one master and
# N-1 slaves) it converges once, then prints the median of 5 no-op runs in seconds, warm (reusing
# the ssh master connections the previous run left, as users' repeated runs do) and cold
# (ssh_control_persist=0: a full ssh handshake per host every run).
# Run as root:  bash bench/noop.sh        (BENCH_SIZES="2 5 20" to choose sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
BIN=./target/release/provision
now() { date +%s.%N; }
for n in ${BENCH_SIZES:-2 20}; do
  bash lab/lab up --distro bookworm --masters 1 --slaves $((n - 1)) >/dev/null 2>&1
  # The first converge loads images on every host at once; under that load a host may time out:
  # converge again, and stop with the failures if it still does not.
  $BIN -i lab/inventory.yaml apply >/dev/null 2>&1 || $BIN -i lab/inventory.yaml apply --format json >/tmp/bench-converge.json \
    || { echo "bench: the lab did not converge (see /tmp/bench-converge.json)" >&2; exit 1; }
  for mode in warm cold; do
    extra=()
    [ "$mode" = cold ] && extra=(-e ssh_control_persist=0)
    times=()
    for _ in 1 2 3 4 5; do
      s=$(now)
      out=$($BIN -i lab/inventory.yaml "${extra[@]}" apply --format json)
      e=$(now)
      if printf '%s' "$out" | grep -Eq '"(changed|failed)": [1-9]'; then
        echo "bench: a no-op run changed or failed something:" >&2; printf '%s\n' "$out" >&2; exit 1
      fi
      times+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')")
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
    echo "hosts=$n $mode no-op apply median=${median}s (runs: ${times[*]})"
  done
done
bash lab/lab up >/dev/null 2>&1   # back to the default lab: one master, one slave

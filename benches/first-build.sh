#!/usr/bin/env bash
# The first-build figure of the README (First build): a fresh clone of this
# repository's HEAD, then the README's first command, timed from the clone to
# the first line `demo` prints. Crates must already be downloaded (`cargo
# fetch` once), so the figure is compile time, not network time.
#
# Usage: benches/first-build.sh [work-dir]   (default: a new temporary folder)
#
# The machine's own speed is printed with it, because a shared machine's speed
# changes through the day and a bare wall time cannot say whether the build or
# the machine got slower:
# - cal: a fixed Python loop timed before and after the run (lower is faster);
# - cpu: CPU seconds the machine spent working during the run, which on an
#   otherwise idle machine is the build and the demo;
# - cores: cpu divided by the wall time, at most the number of cores;
# - steal: the share of the machine's CPU time the hypervisor gave to others
#   during the run (the `steal` column of /proc/stat).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && git rev-parse --show-toplevel)"
work="${1:-$(mktemp -d)}"
rm -rf "$work/clone"
mkdir -p "$work"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.1f}')"; }
cal() {
  local t0 t1
  t0=$(now)
  python3 -c 's = 0
for i in range(20_000_000): s += i * i'
  t1=$(now)
  elapsed "$t0" "$t1"
}
# Clock ticks summed over CPUs: all of them (user .. steal), the busy ones
# (user, nice, system, irq, softirq) and steal.
cpu_ticks() { awk '/^cpu /{ print $2+$3+$4+$5+$6+$7+$8+$9, $2+$3+$4+$7+$8, $9 }' /proc/stat; }
hz=$(getconf CLK_TCK)
log="$work/demo.stderr"

echo "commit: $(git -C "$repo" rev-parse --short HEAD), $(nproc) cores, clone in $work/clone"
cal_before=$(cal)
read -r all0 busy0 steal0 < <(cpu_ticks)
t0=$(now)
git clone -q "$repo" "$work/clone"
cd "$work/clone"
out="$work/demo.stdout"
rm -f "$work/first"
set +e
cargo run --release -- demo 2>"$log" | {
  IFS= read -r line && now >"$work/first" && printf '%s\n' "$line"
  cat
} >"$out"
status=${PIPESTATUS[0]}
set -e
t1=$(now)
read -r all1 busy1 steal1 < <(cpu_ticks)
cal_after=$(cal)

first=$(cat "$work/first" 2>/dev/null || true)
if [ -z "$first" ] || [ "$status" -ne 0 ]; then
  echo "demo failed (exit status $status); its stderr ends:"
  tail -20 "$log"
  exit 1
fi
echo "first line: $(head -1 "$out")"
echo "outcome:    $(grep -m1 ' online, ' "$out" || echo 'no summary line')"
build=$(elapsed "$t0" "$first")
total=$(elapsed "$t0" "$t1")
python3 - "$build" "$total" "$hz" "$all0" "$busy0" "$steal0" "$all1" "$busy1" "$steal1" \
  "$cal_before" "$cal_after" <<'PY'
import sys
build, total, hz, a0, b0, s0, a1, b1, s1 = map(float, sys.argv[1:10])
cpu = (b1 - b0) / hz
print(f"fresh clone to the demo's first line: {build:.1f} s (to the demo's end: {total:.1f} s)")
print(f"cpu: {cpu:.0f} s, cores: {cpu / total:.2f}, "
      f"steal: {100 * (s1 - s0) / max(1, a1 - a0):.1f} %, cal: {sys.argv[10]} / {sys.argv[11]} s")
PY

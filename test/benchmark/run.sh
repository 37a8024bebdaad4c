#!/usr/bin/env bash
# Build and run arc's benchmarks (release preset), then the asyncio and Node
# anchors, and print how much faster arc is than each on the same
# spawn -> cancel(reason) -> join scenario.
#
# Usage: test/benchmark/run.sh [--benchmark_* flags...]
#   Without flags the benchmarks run with 5 repetitions and report medians.
#   BUILD_JOBS=N limits the build's parallelism (default: the preset's).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
cd "${root}"

cmake --preset release
cmake --build --preset release --target arc_benchmarks ${BUILD_JOBS:+-j "${BUILD_JOBS}"}

if [[ $# -eq 0 ]]; then
  set -- --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
fi

out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
build/release/test/benchmark/arc_benchmarks "$@" | tee "${out}"

# "<who> spawn->cancel->join: <ns> ns/task" -> <ns>
per_task() { sed -n "s|^$1 spawn->cancel->join$2: \([0-9.]*\) ns/task\$|\1|p" "$3" | tail -n 1; }

arc_ns="$(per_task arc '' "${out}")"
arc_thrown_ns="$(per_task arc ' (thrown)' "${out}")"

anchors=()
if command -v python3 >/dev/null; then
  echo
  python3 "${here}/anchors/spawn_cancel_join.py" | tee -a "${out}"
  python3 "${here}/anchors/spawn_cancel_join.py" --no-gc | tee -a "${out}"
  anchors+=(asyncio "asyncio (gc off)")
else
  echo "python3 not found: skipping the asyncio anchor"
fi
if command -v node >/dev/null; then
  echo
  node "${here}/anchors/spawn_cancel_join.mjs" | tee -a "${out}"
  anchors+=(node)
else
  echo "node not found: skipping the Node anchor"
fi

if [[ -z "${arc_ns}" ]]; then
  echo "arc's spawn->cancel->join benchmark did not run (filtered out?): no factors"
  exit 0
fi

echo
echo "arc vs anchors, spawn->cancel(reason)->join of 1e5 tasks (factor = anchor ns / arc ns)"
printf '%-18s %12s %14s %10s %8s  %s\n' anchor "ns/task" "arc ns/task" factor target ""
for anchor in "${anchors[@]}"; do
  anchor_ns="$(per_task "${anchor}" '' "${out}")"
  [[ -n "${anchor_ns}" ]] || continue
  target=$([[ "${anchor}" == asyncio* ]] && echo 25 || echo 12)
  for variant in plain thrown; do
    if [[ "${variant}" == plain ]]; then ns="${arc_ns}"; label=""; else ns="${arc_thrown_ns}"; label=" (thrown)"; fi
    [[ -n "${ns}" ]] || continue
    awk -v a="${anchor}" -v an="${anchor_ns}" -v ns="${ns}" -v t="${target}" -v l="${label}" \
      'BEGIN { f = an / ns; printf "%-18s %12.1f %14.1f %10.1f %8s  %s%s\n", a, an, ns, f, ">= " t, (f >= t ? "ok" : "MISSED"), l }'
  done
done

# The group shutdown of 10^5 sleeping children, beside asyncio's TaskGroup
# and the same spawn->cancel anchors (no factor targets: these are context).
arc_group_ns="$(sed -n 's|^arc group shutdown: \([0-9.]*\) ns/task$|\1|p' "${out}" | tail -n 1)"
asio_group_ns="$(sed -n 's|^asio group shutdown: \([0-9.]*\) ns/task$|\1|p' "${out}" | tail -n 1)"
if [[ -n "${arc_group_ns}" ]] && command -v python3 >/dev/null; then
  echo
  python3 "${here}/anchors/group_shutdown.py" | tee -a "${out}"
  tg_ns="$(sed -n 's|^asyncio TaskGroup shutdown: \([0-9.]*\) ns/task$|\1|p' "${out}" | tail -n 1)"
  echo
  echo "group shutdown of 1e5 sleeping children (factor = anchor ns / arc ns)"
  printf '%-26s %12s %14s %10s\n' anchor "ns/task" "arc ns/task" factor
  for pair in "raw Asio:${asio_group_ns}" "asyncio TaskGroup:${tg_ns}" \
      "asyncio task.cancel(msg):$(per_task asyncio '' "${out}")" "node AbortController:$(per_task node '' "${out}")"; do
    name="${pair%%:*}"; ns="${pair#*:}"
    [[ -n "${ns}" ]] || continue
    awk -v a="${name}" -v an="${ns}" -v g="${arc_group_ns}" \
      'BEGIN { printf "%-26s %12.1f %14.1f %10.1f\n", a, an, g, an / g }'
  done
fi


#!/usr/bin/env bash
# N jaxseg processes on this machine, joined into one JAX system through a coordinator on
# localhost: the multi-host code path (process-major global mesh, each process feeding its shard
# of the global batch, collective checkpoints) without a cluster. See launch/README.md.
#
#   bash launch/local_multiprocess.sh N --config=configs/demo.py:tiny --workdir=runs/mp [flags]
#
# Every argument after N goes to `python -m jaxseg.main` unchanged; all processes share the
# workdir. Output lines are prefixed with the process index. Environment:
#   JAX_PLATFORMS   default cpu (1 CPU device per process; more with XLA_FLAGS=
#                   --xla_force_host_platform_device_count=K). cuda: process i drives GPU i.
#   JAXSEG_PORT     coordinator port (default: a free one)
# A process that fails takes the others down at once (they would wait in a collective until
# JAX's heartbeat timeout). SIGINT/SIGTERM are forwarded as SIGTERM: every process saves a
# checkpoint at the same step and exits with 143, and the same command resumes; processes
# still running 60 s after that (JAXSEG_STOP_GRACE) are killed. Exit status: the first failing
# process's, else 0.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: $0 N --config=configs/NAME.py[:ARGS] --workdir=DIR [jaxseg.main flags]"
n=${1:?$usage}
shift
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
python=${PYTHON:-.venv/bin/python}
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
port=${JAXSEG_PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')}

grace=${JAXSEG_STOP_GRACE:-60}
pids=()
kill_at=""  # when set: the time after which the remaining processes are killed
live() { for p in "${pids[@]}"; do [[ -z $p ]] || echo "$p"; done; }
stop() {
  kill -TERM $(live) 2>/dev/null || true
  kill_at=$((SECONDS + grace))
}
trap stop INT TERM

for ((i = 0; i < n; i++)); do
  gpu=()
  [[ $JAX_PLATFORMS == cpu ]] || gpu=(JAXSEG_LOCAL_DEVICE_IDS="$i")
  env JAXSEG_COORDINATOR="localhost:$port" JAXSEG_NUM_PROCESSES="$n" JAXSEG_PROCESS_ID="$i" \
    ${gpu[@]+"${gpu[@]}"} "$python" -u -m jaxseg.main "$@" > >(sed -u "s/^/[$i] /") 2>&1 &
  pids+=($!)
done

status=0
remaining=$n
while ((remaining > 0)); do
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null || continue
    rc=0
    wait "$pid" || rc=$?
    pids[i]=""
    remaining=$((remaining - 1))
    ((rc == 0 || status != 0)) || status=$rc
    if ((rc == 143)) && [[ -z $kill_at ]]; then
      kill_at=$((SECONDS + grace))  # preempted: the others stop at the same step
    elif ((rc != 0 && rc != 143)); then
      [[ -n $kill_at ]] || echo "local_multiprocess: process $i exited with $rc; stopping the others" >&2
      kill_at=$SECONDS
    fi
  done
  if [[ -n $kill_at ]] && ((SECONDS >= kill_at)) && [[ -n $(live) ]]; then
    kill -KILL $(live) 2>/dev/null || true
  fi
  sleep 0.5
done
exit "$status"

#!/usr/bin/env bash
# N independent jaxseg workers on this machine, worker i training shard i/N of one study (whole
# families of chains, `jaxseg train --shard=i/N`), then `jaxseg report` on the workdir. See
# launch/README.md.
#
#   bash launch/local_shards.sh N --config=configs/demo.py:tiny --workdir=runs/demo [flags]
#
# Every argument after N goes to `python -m jaxseg.main` unchanged, followed by --shard=i/N. When
# `nvidia-smi -L` lists GPUs, worker i sees GPU i mod their count (CUDA_VISIBLE_DEVICES; with
# more workers than GPUs they share them, without preallocating their memory); otherwise the
# workers are plain CPU processes (JAX_PLATFORMS=cpu). Output lines are prefixed with [i/N].
# Workers are independent: one failing leaves the others running. SIGINT/SIGTERM are forwarded
# as SIGTERM (each worker checkpoints its run and exits 143; the same command resumes); a second
# signal kills them. Exit status: the first failing worker's, else `jaxseg report`'s.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: $0 N --config=configs/NAME.py[:ARGS] --workdir=DIR [jaxseg.main flags]"
n=${1:?$usage}
shift
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
workdir="" previous=""
for arg in "$@"; do
  [[ $previous == --workdir ]] && workdir=$arg
  [[ $arg == --workdir=* ]] && workdir=${arg#--workdir=}
  previous=$arg
done
[[ -n $workdir ]] || { echo "$usage" >&2; exit 2; }
python=${PYTHON:-.venv/bin/python}
gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
if ((gpus > 0 && n > gpus)); then
  export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
fi

pids=()
signalled=""
stop() {
  local how=TERM
  [[ -z $signalled ]] || how=KILL
  signalled=1
  kill -"$how" "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM

for ((i = 0; i < n; i++)); do
  if ((gpus > 0)); then
    device=(CUDA_VISIBLE_DEVICES=$((i % gpus)))
  else
    device=(JAX_PLATFORMS=cpu)
  fi
  env "${device[@]}" "$python" -u -m jaxseg.main "$@" --shard="$i/$n" \
    > >(sed -u "s|^|[$i/$n] |") 2>&1 &
  pids+=($!)
done

status=0
for i in "${!pids[@]}"; do
  while :; do  # a trapped signal interrupts `wait`: wait again until the worker has ended
    rc=0
    wait "${pids[$i]}" || rc=$?
    kill -0 "${pids[$i]}" 2>/dev/null || break
  done
  if ((rc != 0)); then
    echo "local_shards: worker $i/$n exited with $rc" >&2
    ((status != 0)) || status=$rc
  fi
done
[[ -z $signalled ]] || exit "$status"
rc=0
JAX_PLATFORMS=cpu "$python" -m jaxseg report "$workdir" || rc=$?
((status != 0)) || status=$rc
exit "$status"

#!/usr/bin/env bash
# One jaxseg run on every host of a Cloud TPU VM slice (e.g. v4-32: 4 hosts), one process per
# host, all joined into one JAX system: JAX finds the other hosts itself (TPU metadata), so the
# processes only get JAXSEG_DISTRIBUTED=auto. Runs from your machine through
# `gcloud compute tpus tpu-vm ssh --worker=all`. Not exercised by the test suite; see
# launch/README.md.
#
#   export TPU_NAME=my-v4-32 ZONE=us-central2-b [PROJECT=my-project] [REPO_DIR=jaxseg]
#   bash launch/tpu_vm.sh copy                   # this checkout (git HEAD) to every host
#   bash launch/tpu_vm.sh setup                  # venv + jaxseg + jax[tpu] on every host
#   bash launch/tpu_vm.sh run --config=configs/demo.py --workdir=/mnt/shared/runs/demo [flags]
#   bash launch/tpu_vm.sh exec 'ls /dev/accel*'  # any command on every host
#
# The workdir must be one directory that every host sees at the same path (checkpoints are
# written collectively into it): e.g. a Filestore NFS share or a gcsfuse-mounted bucket. The
# global batch_size must be a multiple of the slice's TPU chips (devices).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
repo_dir=${REPO_DIR:-jaxseg}
gcloud_args=(--zone="$ZONE" --worker=all)
[[ -z ${PROJECT:-} ]] || gcloud_args+=(--project="$PROJECT")

on_all_hosts() {  # run one shell command line on every host, in parallel
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${gcloud_args[@]}" --command="$1"
}

cmd=${1:?usage: $0 copy|setup|run|exec ...}
shift
case $cmd in
  copy)
    archive=$(mktemp --suffix=.tar.gz)
    git archive --format=tar.gz -o "$archive" HEAD
    gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:jaxseg.tar.gz" "${gcloud_args[@]}"
    rm -f "$archive"
    on_all_hosts "mkdir -p $repo_dir && tar -xzf jaxseg.tar.gz -C $repo_dir && rm jaxseg.tar.gz"
    ;;
  setup)
    # jax[tpu] pulls the libtpu matching the jax version that jaxseg pins.
    on_all_hosts "cd $repo_dir && bash launch/setup.sh &&
      .venv/bin/python -m pip install -q \"jax[tpu]==\$(.venv/bin/python -c 'import jax; print(jax.__version__)')\""
    ;;
  run)
    # Flags are quoted for the remote shell; each host's output is prefixed by gcloud.
    on_all_hosts "cd $repo_dir && JAXSEG_DISTRIBUTED=auto .venv/bin/python -u -m jaxseg.main $(printf '%q ' "$@")"
    ;;
  exec)
    on_all_hosts "cd $repo_dir && $*"
    ;;
  *)
    echo "usage: $0 copy|setup|run|exec ..." >&2
    exit 2
    ;;
esac

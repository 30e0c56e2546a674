#!/usr/bin/env bash
# Set up livestyle in ./.venv.
#
#   bash scripts/setup.sh          # the app: livestyle[all] (I/O, virtual camera, web, OBS)
#   bash scripts/setup.sh --dev    # the app plus the test tools: livestyle[dev]
#
# torch is pinned to 2.13.0: the CPU build on machines without an NVIDIA GPU (never an unpinned
# torch there: that pulls gigabytes of CUDA wheels), the default CUDA build where `nvidia-smi`
# sees a GPU (a CPU build found there is replaced by it). Safe to run again: it returns at once
# when nothing changed.
set -euo pipefail

TORCH_VERSION=2.13.0
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

extra=all
for arg in "$@"; do
  case "$arg" in
    --dev) extra=dev ;;
    -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --dev or nothing)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=progress.sh
source scripts/progress.sh
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "setup.sh: livestyle needs Python 3.10 or newer ($python is $("$python" -V 2>&1))" >&2
  exit 1
fi

venv_py=.venv/bin/python
stamp=.venv/.livestyle-setup
gpu=
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
# torch in .venv is the pinned version, and the CUDA build where an NVIDIA GPU is present
torch_ok() {
  "$venv_py" -c "import torch, sys; sys.exit(not (torch.__version__.startswith('$TORCH_VERSION') and ('$gpu' == '' or torch.version.cuda)))" 2>/dev/null
}
hash=$(sha256sum pyproject.toml | cut -c1-16)
want="$extra $hash"
# [dev] includes [all], so a --dev install also satisfies a plain one.
if [[ -x $venv_py && -f $stamp ]] && { grep -qxF "$want" "$stamp" || grep -qxF "dev $hash" "$stamp"; } \
   && "$venv_py" -c "import importlib.util as u, sys; sys.exit(not u.find_spec('livestyle'))" 2>/dev/null && torch_ok; then
  echo "livestyle[$extra] is already installed in .venv"
  exit 0
fi

if [[ ! -x $venv_py ]]; then
  echo "creating .venv"
  "$python" -m venv .venv
fi
log=.venv/setup.log
: > "$log"
pip_install() {
  # pip's own output goes to .venv/setup.log (its last line shown every 10 s); all of it on failure.
  if ! with_progress "$log" "pip install" "$venv_py" -m pip install --disable-pip-version-check "$@"; then
    tail -n 25 "$log" >&2
    echo "setup.sh: pip install $* failed (full log: $log)" >&2
    exit 1
  fi
}

if ! torch_ok; then
  if [[ -n $gpu ]]; then
    if "$venv_py" -c "import torch, sys; sys.exit(torch.version.cuda is not None)" 2>/dev/null; then
      # pip counts 2.13.0+cpu as torch==2.13.0 and would keep it: remove it first
      echo "replacing the CPU build of torch: an NVIDIA GPU is present"
      with_progress "$log" "pip uninstall" "$venv_py" -m pip uninstall -y --disable-pip-version-check torch \
        || { tail -n 25 "$log" >&2; echo "setup.sh: pip uninstall torch failed (full log: $log)" >&2; exit 1; }
    fi
    echo "installing torch==$TORCH_VERSION (CUDA build: an NVIDIA GPU is present; a few GB, minutes)"
    pip_install "torch==$TORCH_VERSION"
  else
    echo "installing torch==$TORCH_VERSION (CPU build: no NVIDIA GPU found; about 1-2 minutes)"
    # The CPU index as an extra index: its 2.13.0+cpu outranks PyPI's CUDA 2.13.0, and torch's
    # own dependencies still come from PyPI.
    pip_install --retries 1 --timeout 30 --extra-index-url "$TORCH_CPU_INDEX" "torch==$TORCH_VERSION"
  fi
fi

echo "installing livestyle[$extra]"
pip_install -e ".[$extra]"
if [[ $extra == dev ]]; then
  # The reference implementation the StreamDiffusionV2 parity test runs. Never with its
  # dependencies: they pin torch 2.6 (the parts it needs on a CPU are in the dev extra).
  pip_install --no-deps "streamdiffusionv2==0.1.1"
fi
echo "$want" > "$stamp"
echo "done: .venv/bin/livestyle is ready (try: .venv/bin/livestyle doctor)"

#!/usr/bin/env bash
# The GPU run of bench/gpu.py, ready for a lent machine (see the docstring of bench/gpu.py and bench/README.md).
#
#   bash bench/gpu.sh [gpu.py options]      run bench/gpu.py with the current python (python3 on PATH, or $PYTHON)
#   bash bench/gpu.sh --fetch-wheels [DIR]  here, once: download the wheels of what the GPU machine's preinstalled
#                                           Python lacks into DIR (default: <repo>/.whl, added to .git/info/exclude)
#
# Before running gpu.py it sets NO_ALBUMENTATIONS_UPDATE=1, HF_HUB_OFFLINE=1, PYTHONUNBUFFERED=1, MPLCONFIGDIR (a
# temporary folder) and puts this checkout first on PYTHONPATH (the package need not be installed). Where
# marine_unet's dependencies do not import and <repo>/.whl holds wheels (carried by the run tool), it installs those
# wheels into a temporary folder first (pip --no-index: nothing is fetched) and adds it to PYTHONPATH.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$(command -v python3 || command -v python)}"

# What the GPU machine's image lacks of marine_unet's dependencies (bench/README.md, "GPU run"), pinned to the versions
# the project is tested with. Everything else (torch, torchvision, timm, numpy, scipy, opencv, matplotlib, safetensors,
# tensorboard, tqdm, huggingface_hub, ...) is preinstalled there.
WHEELS=(rasterio==1.4.4 affine==3.0.1 cligj==0.7.2 click-plugins==1.1.1.2 segmentation_models_pytorch==0.6.0
        albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
        typing-inspection==0.4.5 typing_extensions==4.16.0 stringzilla==5.3.2 simsimd==6.5.16 fastcore==1.14.5)

if [[ "${1:-}" == "--fetch-wheels" ]]; then
  dir="${2:-$repo/.whl}"
  mkdir -p "$dir"
  if [[ -z "${2:-}" ]]; then   # the default folder must not be committed: ignore it in this clone only
    exclude="$(git -C "$repo" rev-parse --git-path info/exclude)"
    [[ "$exclude" = /* ]] || exclude="$repo/$exclude"
    grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
  fi
  for wheel in "${WHEELS[@]}"; do   # one at a time: each with the platforms pip must match exactly (Python 3.12 there)
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
      -d "$dir" "$wheel" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  done
  du -sh "$dir"; ls "$dir"
  exit 0
fi

export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export MPLCONFIGDIR="$(mktemp -d "${TMPDIR:-/tmp}/gpu_bench_mpl.XXXXXX")"
site=""
trap 'rm -rf "$MPLCONFIGDIR" ${site:+"$site"}' EXIT
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
check='import rasterio, segmentation_models_pytorch, albumentations, fastcore, marine_unet.train, marine_unet.infer'
if ! "$py" -c "$check" 2>/dev/null; then
  if compgen -G "$repo/.whl/*.whl" > /dev/null; then
    site="$(mktemp -d "${TMPDIR:-/tmp}/gpu_bench_site.XXXXXX")"
    echo "installing the carried wheels of $repo/.whl into $site" >&2
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$repo"/.whl/*.whl ||
      { echo "installing $repo/.whl failed: its wheels are for CPython 3.12 on x86-64 Linux (the GPU machine's python3)" >&2; exit 2; }
    export PYTHONPATH="$PYTHONPATH:$site"
  fi
  "$py" -c "$check" || { echo "marine_unet does not import with $py (see above); carry the wheels: bash bench/gpu.sh --fetch-wheels" >&2; exit 2; }
fi
status=0
"$py" "$repo/bench/gpu.py" "$@" || status=$?
exit "$status"

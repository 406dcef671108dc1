# Sourced by the device scripts (tools/gpu/session*.sh) on the GPU host, from the repository
# root: installs the carried wheels (.whl, no network there) into /tmp/site, puts them and src/
# on the path, and writes the GPU facts (cards, clocks, power limit, driver, torch/CUDA/Triton,
# cores) to the file named by $1.
ls .whl/*.whl | grep -vE '/(pip|wheel|setuptools|build|pyproject_hooks)-' | xargs python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl
{ nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm,power.limit,temperature.gpu,driver_version --format=csv
  python3 -c "import torch, triton; print(torch.__version__, torch.version.cuda, triton.__version__)"; nproc; } > "$1" 2>&1

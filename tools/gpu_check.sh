#!/usr/bin/env bash
# The GPU check (issue 17), one run on a lent CUDA machine: the CUDA tests, the GPU benchmark, a
# kernel profile at 640x480, the multi-camera benchmark, then the whole suite if time is left.
# Each step has its own time limit, so the run ends inside ~7 minutes and every log it wrote
# comes back.
#
#   bash tools/gpu_check.sh            # logs and JSON under $OUT (the device tool) or ./gpu_out
#
# That machine has torch with CUDA, numpy, OpenCV, safetensors, pytest and hypothesis, but not
# rosbags or catkin_pkg: wheels for them (Python 3.12) may be carried in .whl/, and the sample
# frames in .gpu_data/ when ../shared/data does not travel (both ignored by git: the README's
# "Running the GPU check" says how to fill them).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
PY=${PYTHON:-python3}

if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ ! -d ../shared/data ] && [ -d .gpu_data ]; then
    mkdir -p ../shared && cp -r .gpu_data ../shared/data
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, say how it ended
    local name=$1 limit=$2; shift 2
    local started=$SECONDS
    echo "=== $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - started))s"
    return 0
}

{
    date -u; uname -a; nvidia-smi 2>&1 | head -15
    $PY -c "import torch, numpy, cv2; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), \
'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None, 'numpy', numpy.__version__, 'cv2', cv2.__version__)"
} >"$OUT/env.log" 2>&1
tail -n 1 "$OUT/env.log"

step cuda_tests 160 $PY -m pytest -q -p no:cacheprovider -rs --durations=8 \
    test/test_gpu_engines.py test/test_pipeline.py test/test_gpu_engine_errors.py test/test_fallback_build.py test/test_bench_gpu.py \
    test/test_cloud.py::test_confidence_on_cuda_matches_the_cpu
tail -n 25 "$OUT/cuda_tests.log"

step crp_pool 60 $PY benchmarks/bench_crp_pool.py --json "$OUT/crp_pool.json"
cat "$OUT/crp_pool.log"

step bench_gpu 170 $PY benchmarks/bench_gpu.py --no-cpu --frames 100 --json "$OUT/bench_gpu.json"
cat "$OUT/bench_gpu.log"

step profile 30 $PY tools/gpu_profile.py --size 640x480 --precision fp16 --json "$OUT/profile.json"
head -n 20 "$OUT/profile.log"

# Several cameras through one network vs one pipeline per camera (issue 15): torch fp16 at
# 640x480, N = 1, 2, 4, both modes interleaved; its last line is the verdict.
step bench_multicam 120 $PY benchmarks/bench_multicam.py --device cuda --backend torch --precision fp16 --rounds 4 --frames 10 \
    --json "$OUT/bench_multicam.json"
cat "$OUT/bench_multicam.log"

# What is left of the run: the whole suite with CUDA present (tests that take another branch when
# CUDA exists). Launch tests skip there (no rclpy).
step all_tests 100 $PY -m pytest -q -p no:cacheprovider -x -n 8 test
tail -n 6 "$OUT/all_tests.log"

"""Shared helpers of the benchmark scripts: timing, machine info, matmul peak, FLOP count, results and tables.

Benchmarks compare paths *in the same run on the same machine*: absolute times on shared, noisy machines mean little,
so every timing is the median of several repeats (after warm-up) and is reported beside ratios.
"""
from __future__ import annotations
import argparse, contextlib, json, os, platform, statistics, subprocess, sys, time
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1"); os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from marine_unet.core import cpu_flags, cpu_model, numpy_math_kernels

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MODELS_DIR = RESULTS_DIR / "models"   # cached trained models (git-ignored)

# ---------------------------------------------------------------------------------------------- arguments / device
def base_parser(description: str) -> argparse.ArgumentParser:
    "An argument parser with the options every benchmark shares: --device, --threads, --repeats, --quick."
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run (auto: CUDA if available)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = leave torch's default)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per path (the median is reported)")
    p.add_argument("--quick", action="store_true", help="tiny repeats and sizes: a smoke run, not a measurement")
    return p

def pick_device(name: str="auto") -> torch.device:
    "torch.device for --device auto|cpu|cuda."
    if name == "auto": name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available(): raise SystemExit("--device cuda: no CUDA device is available")
    return torch.device(name)

def set_threads(n: int) -> int:
    "Apply --threads (0 keeps torch's default) and return the thread count in use."
    if n > 0: torch.set_num_threads(n)
    return torch.get_num_threads()

def sync(device: torch.device|str="cpu"):
    "Wait for queued GPU work (no-op on CPU), so a timer measures finished work."
    if torch.device(device).type == "cuda": torch.cuda.synchronize()

# ---------------------------------------------------------------------------------------------- timing
def time_fn(fn: Callable[[], Any], repeats: int=7, warmup: int=2, device: torch.device|str="cpu", inner: int=1) -> dict[str, Any]:
    "Median (and min / max / all) seconds of one call of `fn` over `repeats` timed repeats of `inner` calls, after `warmup` calls."
    for _ in range(warmup): fn()
    sync(device)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _ in range(inner): fn()
        sync(device)
        times.append((time.perf_counter() - t0) / inner)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times),
            "warmup": warmup, "inner": inner, "times_s": [round(t, 6) for t in times], "threads": torch.get_num_threads()}

# ---------------------------------------------------------------------------------------------- machine
def _cpu_flags() -> list[str]:
    "The CPU flags that choose the kernels the benchmarks time (bf16, AMX, AVX-512, AVX2, VNNI)."
    return sorted(f for f in cpu_flags() if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2", "avx512_vnni", "avx_vnni")))

def _version(name: str) -> str|None:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception: return None

def _git_commit() -> str|None:
    try: return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception: return None

def machine_info(device: torch.device|str="cpu") -> dict[str, Any]:
    "CPU model, cores, thread count, load, torch / ORT / smp versions, device (GPU name) and git commit."
    device = torch.device(device)
    info = {"cpu": cpu_model(), "cpu_flags": _cpu_flags(), "numpy_kernels": numpy_math_kernels(), "logical_cores": os.cpu_count(),
            "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch_threads": torch.get_num_threads(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": _version("onnxruntime"),
            "onnx": _version("onnx"), "segmentation_models_pytorch": _version("segmentation-models-pytorch"),
            "scikit-learn": _version("scikit-learn"), "mkldnn": torch.backends.mkldnn.is_available(),
            "device": str(device), "git_commit": _git_commit(), "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if device.type == "cuda": info["gpu"] = torch.cuda.get_device_name(device); info["cuda"] = torch.version.cuda
    return info

# ---------------------------------------------------------------------------------------------- peaks and FLOPs
def matmul_peak(dtype: torch.dtype=torch.float32, n: int=2048, repeats: int=5, device: torch.device|str="cpu") -> dict[str, Any]:
    "Measured matrix-multiply throughput of square n×n matmuls in `dtype` (2·n³ FLOP each): median (`gflops`) and best (`best_gflops`) of repeats."
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype); b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    t = time_fn(lambda: torch.mm(a, b), repeats=repeats, warmup=2, device=device)
    return {"dtype": str(dtype).replace("torch.", ""), "n": n, "gflops": 2 * n**3 / t["median_s"] / 1e9, "median_s": t["median_s"],
            "best_gflops": 2 * n**3 / t["min_s"] / 1e9,
            "times_s": t["times_s"]}

def conv_gemm_peak(dtype: torch.dtype=torch.float32, channels: int=256, side: int=32, batch: int=8, repeats: int=5, device: torch.device|str="cpu") -> dict[str, Any]:
    """Throughput of a 3×3 convolution (channels→channels, batch×side², channels_last, weights and input in `dtype`,
    2·batch·side²·channels²·9 FLOP) run by the convolution library (oneDNN on CPU, cuDNN on CUDA): the peak the model's
    convolutions can reach, which exceeds torch.mm's where torch's BLAS (MKL) takes a slow path (e.g. on AMD CPUs)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval().to(device=device, dtype=dtype, memory_format=torch.channels_last)
    x = torch.randn(batch, channels, side, side, generator=g).to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    def run():
        with torch.inference_mode(): conv(x)
    t = time_fn(run, repeats=repeats, warmup=2, device=device)
    flop = 2 * batch * side * side * channels * channels * 9
    return {"dtype": str(dtype).replace("torch.", ""), "shape": f"3x3 conv {channels}->{channels} on {batch}x{side}x{side}", "gflops": flop / t["median_s"] / 1e9,
            "best_gflops": flop / t["min_s"] / 1e9, "median_s": t["median_s"], "times_s": t["times_s"]}

def peak(dtype: torch.dtype=torch.float32, n: int=2048, repeats: int=5, device: torch.device|str="cpu") -> dict[str, Any]:
    "The machine's measured peak for `dtype`: the better of a square n×n torch.mm and a oneDNN/cuDNN 3×3 convolution (both kept)."
    mm, conv = matmul_peak(dtype, n, repeats, device), conv_gemm_peak(dtype, repeats=repeats, device=device)
    best = max((mm, conv), key=lambda r: r["best_gflops"])
    return {"dtype": mm["dtype"], "gflops": best["gflops"], "best_gflops": best["best_gflops"], "source": "matmul" if best is mm else "conv3x3",
            "matmul": mm, "conv3x3": conv}

def forward_flops(model: torch.nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """FLOPs of one forward pass of `model` on `example` with torch.utils.flop_counter.FlopCounterMode
    (counts 2·MACs of convolutions, transposed convolutions, matmuls / linear layers; elementwise ops, BatchNorm,
    activations and upsampling are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter: model(example)
    total = counter.get_total_flops()
    return {"flops": int(total), "flops_per_sample": total / len(example), "counter": "torch.utils.flop_counter.FlopCounterMode (2*MAC of conv/matmul; elementwise not counted)"}

# ---------------------------------------------------------------------------------------------- results
def _plain(obj: Any) -> Any:
    "JSON-ready copy: numpy / torch scalars and arrays to Python, dtypes and paths to strings."
    if isinstance(obj, dict): return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)): return [_plain(v) for v in obj]
    if isinstance(obj, (np.generic,)): return obj.item()
    if isinstance(obj, np.ndarray): return obj.tolist()
    if torch.is_tensor(obj): return obj.tolist()
    if isinstance(obj, (torch.dtype, torch.device, Path)): return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj): return None
    return obj

def write_results(name: str, data: dict[str, Any], folder: Path|str|None=None) -> Path:
    "Write `data` to bench/results/<name>.json atomically (temp file then rename); return the path."
    folder = Path(folder) if folder is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"; tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(_plain(data), indent=2) + "\n", encoding="utf-8"); os.replace(tmp, path)
    finally:
        if tmp.exists(): tmp.unlink()
    return path

def _cell(v: Any, digits: int=3) -> str:
    if v is None: return "–"
    if isinstance(v, bool): return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v): return "–"
        return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)

def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]|None=None, digits: int=3) -> str:
    "A markdown table of `rows` (dicts), in the order of `columns` (default: the first row's keys)."
    if not rows: return "(no rows)"
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c), digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines)

def command_line() -> str:
    "The command that ran this script, for the results file and the README."
    return "python " + " ".join([os.path.relpath(sys.argv[0], BENCH_DIR.parent)] + sys.argv[1:])

"""The GPU run (issue 21), prepared to go in one shot: on one CUDA device, in about 8 minutes, four steps, each printed
as soon as it is measured and written to `<out>/gpu-<device-name>-<date>.json` (rewritten atomically after every step
and round, so a run cut short keeps what it measured) and a Markdown table beside it (`.md`):

- step1 (train): samples/s of the project's `train_one_epoch` on the default model (TrainConfig defaults: U-Net
  ResNet-18 with the 8 indices, deterministic kernels) on the same pre-loaded batches (pinned on CUDA; batch 32 of
  128² on CUDA, 8 on a CPU), variants in turns: fp32, AMP fp16 (GradScaler), bf16, bf16 channels-last, bf16
  channels-last with cudnn.benchmark instead of deterministic kernels, `torch.compile` bf16. Ratios to fp32 and to
  bf16, GFLOP/s (3 x the forward's FLOPs) as % of the matmul peak measured in this run in the same arithmetic (fp32 on
  CUDA: convolutions run in TF32 by default, and the peak is the better of an fp32 torch.mm and a TF32 3x3 conv).
- step2 (patch): the inference paths of bench/patch_inference.py (eager fp32, channels_last, fp16 / bf16 autocast,
  torch.compile, ONNX Runtime where it has the device's provider) on an untrained U-Net ResNet-34, 11 bands (speed does
  not depend on the weights), batches of 256² patches already on the device: ms/patch, speed-up vs eager fp32, % of
  peak, and the largest change of a probability against eager fp32.
- step3 (scene): `predict_scene` on a synthetic 10 980 x 10 980, 11-band float32 tile (a Sentinel-2 tile's size, tiled
  uncompressed GeoTIFF written here in strips), in fp32 and fp16 (bf16 on a CPU), timed end to end and split into
  read (read, no-data, normalise, batch), network (to the device, forward, softmax, back), blend (weights, sums,
  arg-max), write (strips and the map) and other (loading, weights digest, checks), by timing wrappers put around
  marine_unet.infer's own functions from here (the package is not changed; CUDA synchronised in the network's).
- step4 (determinism): a tiny training run twice with the same seed (same metrics.json and weights?), and a run
  stopped with stop_after then resumed against the uninterrupted run (same last_model weights?). Reported, not fatal.

Each step has a time budget (--budgets): a step stops starting new rounds when its budget runs short, and one that
overruns it by 15 s is stopped (SIGALRM). A step that fails prints the error and the run goes on with the next; the
exit status is 1 if any step failed or was stopped. `--only step1,step3` reruns parts: the day's file keeps the other
steps' sections.

On the lent GPU machine (the `run` tool: a fresh machine with a preinstalled torch, no package registry; it copies the
working tree and `carry`ed ignored paths, at most 64 MiB a call), from the repository root:

    bash bench/gpu.sh --fetch-wheels                       # here, once: wheels of what that Python lacks -> .whl/ (~42 MB, git-ignored)
    run(command="bash bench/gpu.sh --out $OUT", carry=[".whl"], timeout_s=600)   # there: installs .whl/ into a temp dir, runs this
    cp /work/.device/<files_at>/gpu-*.{json,md} bench/results/                    # here: keep the results

    python bench/gpu.py --smoke --device cpu --out /tmp/gpu-smoke    # every step on the CPU with tiny sizes (about 1 min)
    python bench/gpu.py --device cpu                                  # the full run on a CPU (slow)
    python bench/gpu.py --only step3 --scene-size 8192                # parts, other sizes
"""
from __future__ import annotations
import argparse, contextlib, copy, dataclasses, hashlib, json, os, re, shutil, signal, statistics, sys, tempfile, threading, time, traceback
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1"); os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what set_seed asks for before a training's first CUDA work
BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
try: import marine_unet  # noqa: F401
except ImportError: sys.path.append(str(BENCH_DIR.parent))   # a checkout that is not installed (the lent machine)
from common import (RESULTS_DIR, command_line, conv_gemm_peak, forward_flops, machine_info, markdown_table, matmul_peak,
                    peak, pick_device, set_threads, sync, write_results)
import numpy as np
import torch

STEPS = {"step1": "training samples/s by mode", "step2": "patch inference paths", "step3": "predict_scene on a full tile",
         "step4": "determinism and resume"}
ALIASES = {"train": "step1", "patch": "step2", "scene": "step3", "determinism": "step4"}
BUDGETS = {"cuda": {"step1": 140, "step2": 80, "step3": 140, "step4": 60},     # seconds; with start-up, under 8 minutes
           "cpu": {"step1": 900, "step2": 600, "step3": 3600, "step4": 600},   # the full sizes on a CPU: slow
           "smoke": {"step1": 45, "step2": 45, "step3": 45, "step4": 45}}
GRACE_S = 15   # a step is stopped this long after its budget
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class StepTimeout(BaseException):
    "A step ran past its budget and the grace time (a BaseException: no `except Exception` in a library swallows it)."


# ---------------------------------------------------------------------------------------------- run, budget, report
class Skip(Exception):
    "A variant this device or run cannot do; its message says why."


class Budget:
    "A step's time budget: seconds left, and whether something of an expected length still fits."
    def __init__(self, seconds: float): self.seconds, self.start = float(seconds), time.perf_counter()
    def used(self) -> float: return time.perf_counter() - self.start
    def left(self) -> float: return self.seconds - self.used()
    def fits(self, seconds: float) -> bool: return self.left() >= seconds


@contextlib.contextmanager
def hard_limit(seconds: float):
    "Raise StepTimeout in the main thread after `seconds` (SIGALRM; Python code only: a long C call ends first)."
    def alarm(signum, frame): raise StepTimeout(f"stopped {seconds:.0f} s after the step began (budget + {GRACE_S} s)")
    previous = signal.signal(signal.SIGALRM, alarm); signal.setitimer(signal.ITIMER_REAL, seconds)
    try: yield
    finally: signal.setitimer(signal.ITIMER_REAL, 0); signal.signal(signal.SIGALRM, previous)


def slug(text: str, limit: int=48) -> str:
    "Lower-case letters, digits and dashes."
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def say(text: str): print(text, flush=True)


class Report:
    "The run's results: a dict written as JSON (atomically, common.write_results) and as a Markdown table, after every change."
    def __init__(self, folder: Path, name: str, data: dict):
        self.folder, self.name, self.data = folder, name, data
        self.json, self.md = folder/f"{name}.json", folder/f"{name}.md"
        if self.json.exists():   # --only reruns: keep the other steps' sections of the day's file
            try:
                old = json.loads(self.json.read_text())
                if old.get("device_name") == data["device_name"]:
                    self.data["steps"] = {k: v for k, v in old.get("steps", {}).items() if k in STEPS}
                    self.data["earlier_commands"] = old.get("earlier_commands", []) + [old.get("command")]
            except (OSError, ValueError): pass

    def step(self, key: str, budget: float) -> dict:
        section = {"title": STEPS[key], "status": "running", "budget_s": budget, "notes": [], "skipped": {}, "rows": [],
                   "command": command_line(), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.data["steps"][key] = section; self.save()
        return section

    def save(self):
        write_results(self.name, self.data, self.folder)
        tmp = self.md.with_name(f".{self.md.name}.{os.getpid()}.tmp")
        tmp.write_text(markdown(self.data), encoding="utf-8"); os.replace(tmp, self.md)


TABLES = {"step1": ["mode", "precision", "batch", "ms/step", "samples/s", "x fp32", "x bf16", "GFLOP/s", "% of peak", "GPU MB", "rounds"],
          "step2": ["path", "precision", "ms/patch", "speed-up", "GFLOP/s", "% of peak", "max |dp|", "first call s", "rounds"],
          "step3": ["precision", "run", "tiles", "seconds", "tiles/s", "read s", "network s", "blend s", "write s", "other s", "network share", "reader thread s"],
          "step4": ["check", "equal", "first", "second"]}


def markdown(data: dict) -> str:
    "The Markdown report: the machine, then each step's status, notes and table."
    m = data["machine"]
    lines = [f"# GPU run: {data['device_name']}, {data['date']}", "",
             f"`{data['command']}`{' (smoke run: tiny sizes, not a measurement)' if data['smoke'] else ''}", "",
             f"device {m['device']}{' ' + m['gpu'] if m.get('gpu') else ''}; CPU {m['cpu']}, {m['logical_cores']} cores, {m['torch_threads']} threads; "
             f"torch {m['torch']}, CUDA {m.get('cuda')}, cuDNN {data.get('cudnn')}; commit {m.get('git_commit')}", ""]
    for key, s in data["steps"].items():
        lines += [f"## {key}: {s['title']} ({s['status']}, {s.get('seconds', 0):.0f} s of {s['budget_s']:.0f})", ""]
        lines += [f"- {note}" for note in s["notes"]]
        lines += [f"- skipped {name}: {why}" for name, why in s["skipped"].items()]
        if s.get("error"): lines.append(f"- **error**: {s['error']}")
        lines += ["", markdown_table(s["rows"], TABLES[key], digits=3) if s["rows"] else "(no rows)", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- shared helpers
def restore_torch_defaults():
    "Undo what a step's training set globally (set_seed: deterministic kernels, no cuDNN benchmark): torch's defaults."
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, False


def set_deterministic(flag: bool):
    "What marine_unet.core.set_seed does to the kernels, without the seeding."
    torch.use_deterministic_algorithms(flag, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flag, not flag


def measure_peak(dtype: torch.dtype, device: torch.device, smoke: bool) -> dict:
    "common.peak (the better of a square torch.mm and a 3x3 conv), 8192² matmuls on CUDA; tiny sizes for --smoke."
    if not smoke: return peak(dtype, 8192 if device.type == "cuda" else 2048, 5, device)
    mm, conv = matmul_peak(dtype, 256, 2, device), conv_gemm_peak(dtype, channels=64, side=16, batch=2, repeats=2, device=device)
    best = max((mm, conv), key=lambda r: r["best_gflops"])
    return {"dtype": mm["dtype"], "gflops": best["gflops"], "best_gflops": best["best_gflops"],
            "source": "matmul" if best is mm else "conv3x3", "matmul": mm, "conv3x3": conv}


def tf32_note(device: torch.device) -> list[str]:
    "On CUDA: which fp32 work runs in TF32, for the notes of the % of peak."
    if device.type != "cuda": return []
    return [f"fp32 on CUDA: convolutions run in TF32 (torch.backends.cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, torch's default), "
            f"matmuls do not (torch.backends.cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}); the fp32 peak is the better of "
            f"an 8192² torch.mm and a 3x3 convolution, so it is TF32's where the convolution wins"]


def peaks(ctx, names) -> dict:
    "The measured peaks of these arithmetics (fp32, bf16, fp16), measured once a run."
    for name in names:
        if name not in ctx.peaks:
            ctx.peaks[name] = measure_peak(DTYPES[name], ctx.device, ctx.smoke)
            say(f"peak {name}: {ctx.peaks[name]['gflops']:.0f} GFLOP/s ({ctx.peaks[name]['source']})")
    ctx.report.data["peaks"] = ctx.peaks
    return {n: ctx.peaks[n] for n in names}


def median(values) -> float|None: return statistics.median(values) if values else None


def in_turns(runs: dict, times: dict, rounds: int, budget: Budget, section: dict, save, reserve: float=0.0, label: str=""):
    "Time each run once a round, in turns, for `rounds` rounds while the budget (less `reserve` s) allows; seconds into `times`."
    for r in range(rounds):
        expected = sum(median(times[n]) or 0.0 for n in runs)
        if r and not budget.fits(reserve + 1.5 * expected):
            section["notes"].append(f"{label}{r} of {rounds} timed rounds: the budget ran short"); break
        for name, run in runs.items():
            times[name].append(run())
            say(f"  round {r + 1} {name}: {times[name][-1] * 1e3:.2f} ms")
        save()


def pinned(batch: dict, device: torch.device) -> dict:
    "The batch with its tensors in pinned memory on CUDA (fast, asynchronous copies), as the training DataLoader gives them."
    if device.type != "cuda": return batch
    return {k: (v if v.is_pinned() else v.pin_memory()) if torch.is_tensor(v) else v for k, v in batch.items()}


def gpu_mb(device: torch.device) -> float|None:
    "Peak GPU memory allocated since the last reset, MB (None on a CPU)."
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_gpu_peak(device: torch.device):
    if device.type == "cuda": torch.cuda.reset_peak_memory_stats(device)


def scene_model(ctx) -> Path:
    "The untrained 11-band U-Net ResNet-34 folder steps 2 and 3 share (scene_inference.make_model), made once a run."
    from scene_inference import make_model
    folder = ctx.work/"unet_resnet34"
    if not (folder/"model.safetensors").exists(): make_model(folder, "resnet34")
    return folder


# ---------------------------------------------------------------------------------------------- step 1: training
TRAIN_VARIANTS = {   # name -> (precision, channels_last, compile, deterministic kernels)
    "fp32": ("fp32", False, False, True),
    "AMP fp16": ("fp16", False, False, True),
    "bf16": ("bf16", False, False, True),
    "bf16 channels-last": ("bf16", True, False, True),
    "bf16 channels-last, cudnn.benchmark": ("bf16", True, False, False),
    "bf16 torch.compile": ("bf16", False, True, True),
}


def step_train(ctx, section: dict, budget: Budget):
    from marine_unet.core import set_seed
    from marine_unet.forward import autocast_dtype, cpu_has_native_bf16
    from marine_unet.loss import build_loss
    from marine_unet.model import build_model
    from marine_unet.synthetic import synthetic_marida_dir
    from marine_unet.train import (TrainConfig, check_config, build_optimizer, build_scheduler, train_one_epoch, epoch_loader,
                                   make_train_val_datasets, _class_weight_vector)
    device, a = ctx.device, ctx.args
    batch = a.batch or (2 if ctx.smoke else 32 if device.type == "cuda" else 8)
    steps = a.steps or (2 if ctx.smoke else 10 if device.type == "cuda" else 4)
    rounds = a.rounds or (1 if ctx.smoke else 5 if device.type == "cuda" else 3)
    cfg = check_config(TrainConfig(device=device.type, progress=False, batch_size=batch))
    set_seed(cfg.seed, cfg.deterministic)
    train_ds, _, mean, std = make_train_val_datasets(synthetic_marida_dir(), cfg)
    loss_fn = build_loss(cfg.loss, class_weights=_class_weight_vector(cfg, train_ds))
    distinct, epoch = [], 1
    while len(distinct) < min(steps, 4) and epoch <= 10:   # full batches only (one shape: no recompiling), from a few epochs
        for b in epoch_loader(train_ds, cfg, epoch):
            if len(b["image"]) == batch: distinct.append(pinned(b, device))
            if len(distinct) == min(steps, 4): break
        epoch += 1
    if not distinct: raise RuntimeError(f"batch {batch}: no full batch in the {len(train_ds)} training patches")
    batches = [distinct[i % len(distinct)] for i in range(steps)]
    base = build_model(cfg.arch, encoder=cfg.encoder, in_channels=len(cfg.bands), classes=cfg.protocol, bands=list(cfg.bands),
                       features=cfg.features, mean=mean, std=std).to(device)
    flops = forward_flops(copy.deepcopy(base).eval(), batches[0]["image"][:1].to(device))["flops_per_sample"] * 3
    section.update(batch=batch, steps_per_round=steps, distinct_batches=len(distinct), image=list(batches[0]["image"].shape[1:]),
                   train_flops_per_sample=flops, deterministic_default=cfg.deterministic, times_s={}, gpu_mb={}, first_s={})
    features = ", ".join(cfg.features) if isinstance(cfg.features, (list, tuple)) else cfg.features
    section["notes"].append(f"default TrainConfig model ({cfg.arch} {cfg.encoder}, {len(cfg.bands)} bands + indices {features or 'none'}), "
                            f"batch {batch} of {tuple(batches[0]['image'].shape[-2:])} (TrainConfig's default is 8), {steps} step(s) a round "
                            f"on {len(distinct)} pre-loaded{' pinned' if device.type == 'cuda' else ''} batch(es); deterministic kernels "
                            f"(TrainConfig's default) unless the mode says cudnn.benchmark; ms/step is the median over rounds")
    wanted = [n.strip() for n in a.train_variants.split(",") if n.strip()] or list(TRAIN_VARIANTS)
    state = {}
    for name in wanted:
        precision, channels_last, compiled, deterministic = TRAIN_VARIANTS[name]
        if compiled and ctx.smoke: section["skipped"][name] = "--smoke leaves torch.compile out (minutes of compiling on a CPU)"; continue
        if not deterministic and device.type != "cuda": section["skipped"][name] = "cudnn.benchmark is a CUDA setting"; continue
        if ctx.smoke and precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():   # minutes under load
            section["skipped"][name] = "--smoke leaves emulated bf16 training out (no native bf16 on this CPU)"; continue
        try: dtype = autocast_dtype(precision, device)
        except Exception as e: section["skipped"][name] = f"{type(e).__name__}: {e}"; continue   # fp16 on a CPU
        model = copy.deepcopy(base)
        if channels_last: model = model.to(memory_format=torch.channels_last)
        run_cfg = dataclasses.replace(cfg, precision=precision, channels_last=channels_last, deterministic=deterministic)
        opt = build_optimizer(model.parameters(), run_cfg)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        state[name] = (torch.compile(model) if compiled else model, opt, build_scheduler(opt, run_cfg, len(batches)), run_cfg, dtype,
                       scaler, deterministic)
    for name in state: section["times_s"][name] = []
    used = peaks(ctx, sorted({TRAIN_VARIANTS[n][0] for n in state}))
    section["peaks_gflops"] = {k: v["gflops"] for k, v in used.items()}
    section["notes"] += tf32_note(device) + ["training FLOPs = 3 x the forward pass's (torch.utils.flop_counter: convolutions and matmuls); "
                                             "% of peak against the median GFLOP/s of the peak measured in this run in the same arithmetic"]

    def run(name: str) -> float:
        model, opt, sch, run_cfg, dtype, scaler, deterministic = state[name]
        set_deterministic(deterministic); reset_gpu_peak(device)
        sync(device); start = time.perf_counter()
        train_one_epoch(model, batches, loss_fn, opt, run_cfg, device, dtype, scaler, sch)
        sync(device); seconds = (time.perf_counter() - start) / len(batches)
        if device.type == "cuda": section["gpu_mb"][name] = max(section["gpu_mb"].get(name, 0.0), gpu_mb(device))
        return seconds

    def rows():
        step = {n: median(t) for n, t in section["times_s"].items() if t}
        out = []
        for name, seconds in step.items():
            precision = TRAIN_VARIANTS[name][0]; rate = batch / seconds
            out.append({"mode": name, "precision": precision, "batch": batch, "ms/step": 1e3 * seconds, "samples/s": rate,
                        "x fp32": step["fp32"] / seconds if "fp32" in step else None, "x bf16": step["bf16"] / seconds if "bf16" in step else None,
                        "GFLOP/s": flops * rate / 1e9, "% of peak": 100 * flops * rate / 1e9 / used[precision]["gflops"],
                        "GPU MB": section["gpu_mb"].get(name), "rounds": len(section["times_s"][name])})
        section["rows"] = out; ctx.report.save()

    eager = [n for n in state if not TRAIN_VARIANTS[n][2]]
    compiled = [n for n in state if TRAIN_VARIANTS[n][2]]
    for name in eager if not ctx.smoke else []:   # warm-up round (cuDNN's choices, the allocator)
        start = time.perf_counter(); run(name); section["first_s"][name] = time.perf_counter() - start
        say(f"  warm-up {name}: {section['first_s'][name]:.1f} s")
    reserve = (0.0 if not compiled else 60.0 if device.type == "cuda" else 240.0)   # keep time for compiling
    in_turns({n: (lambda n=n: run(n)) for n in eager}, section["times_s"], rounds, budget, section, rows, reserve)
    for name in compiled:
        if not budget.fits(reserve * 0.75):
            section["skipped"][name] = f"{budget.left():.0f} s of the budget left, too little to compile"; continue
        start = time.perf_counter()
        try: run(name)
        except StepTimeout:
            section["skipped"][name] = f"stopped: compiling and its first steps ran past the step's budget (+{GRACE_S} s)"
            del section["times_s"][name]; break
        except Exception as e:  # noqa: BLE001 - report, keep the other variants
            traceback.print_exc(); section["skipped"][name] = f"failed: {type(e).__name__}: {e}"[:500]; del section["times_s"][name]; continue
        section["first_s"][name] = time.perf_counter() - start
        say(f"  compiled {name}: first {steps} steps took {section['first_s'][name]:.1f} s")
        reference = {n: (lambda n=n: run(n)) for n in ("bf16",) if n in state}   # compiled rounds in turns with bf16 eager
        in_turns({**reference, name: lambda name=name: run(name)}, section["times_s"], rounds, budget, section, rows, 0.0, f"{name}: ")
    rows()
    for r in section["rows"]:
        say(f"{r['mode']:<36} {r['ms/step']:8.2f} ms/step {r['samples/s']:9.1f} samples/s  {r['% of peak']:5.1f} % of {r['precision']} peak")


# ---------------------------------------------------------------------------------------------- step 2: patch inference
PATCH_PATHS = {   # name -> (channels_last, autocast dtype, compile); the paths of patch_inference.py
    "eager": (False, None, False), "channels_last": (True, None, False), "fp16_cl": (True, torch.float16, False),
    "bf16_cl": (True, torch.bfloat16, False), "compile_fp16": (True, torch.float16, True), "compile_bf16": (True, torch.bfloat16, True),
}


def step_patch(ctx, section: dict, budget: Budget):
    from patch_inference import DESCRIPTION, PRECISION, torch_path, onnx_path
    from marine_unet.model import load_model
    device, a = ctx.device, ctx.args
    cuda = device.type == "cuda"
    size = 64 if ctx.smoke else a.patch_size
    batch = a.patch_batch or (2 if ctx.smoke else 32 if cuda else 8)
    rounds = a.rounds or (1 if ctx.smoke else 7 if cuda else 3)
    folder = scene_model(ctx)
    model, config = load_model(folder)
    x_cpu = torch.randn(batch, len(config["bands"]), size, size, generator=torch.Generator().manual_seed(0))
    x = x_cpu.to(device)
    flops = forward_flops(copy.deepcopy(model).to(device).eval(), x[:1])["flops_per_sample"]
    section.update(batch=batch, size=size, flops_per_patch=flops, times_s={}, first_s={}, max_abs_dp={}, providers={})
    section["notes"].append(f"untrained U-Net ResNet-34, 11 bands (speed does not depend on the weights), batches of {batch} "
                            f"patches of {size}², already on the device (the copy there is timed in step3); median of rounds in turns; "
                            f"max |dp|: the largest change of a softmax probability against eager fp32")
    used = peaks(ctx, ["fp32", "bf16"] + ["fp16"] * cuda)
    section["peaks_gflops"] = {k: v["gflops"] for k, v in used.items()}
    section["notes"] += tf32_note(device)
    reference = []

    def prepare(name: str):
        "The path's timed call after its first calls (compiling), or None with the reason in section['skipped']."
        try:
            if name == "fp16_cl" and not cuda: raise Skip("fp16 autocast needs CUDA (marine_unet refuses precision='fp16' on a CPU)")
            if name.startswith("compile") and ctx.smoke: raise Skip("--smoke leaves torch.compile out")
            if name.startswith("compile") and not budget.fits(40 if cuda else 200): raise Skip(f"{budget.left():.0f} s of the budget left, too little to compile")
            if name == "onnx_fp32":
                try: import onnx, onnxruntime as ort  # noqa: F401
                except ImportError as e: raise Skip(f"onnx / onnxruntime are not installed ({e}; the [onnx] extra)") from None
                if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise Skip(f"onnxruntime-gpu is absent: onnxruntime {ort.__version__} offers {ort.get_available_providers()}, "
                               "no CUDAExecutionProvider (a CPU figure would not be a GPU one)")
                fn, provider = onnx_path(folder, ctx.work/"onnx", False, torch.get_num_threads(), device)
                section["providers"][name] = provider
                call = lambda: fn(x_cpu)
            else:
                fn = torch_path(model, device, *PATCH_PATHS[name]); call = lambda: fn(x)
            start = time.perf_counter(); out = call(); sync(device); section["first_s"][name] = time.perf_counter() - start
            for _ in range(2): call()
            probabilities = out.float().softmax(1).to(device)
            if not reference: reference.append(probabilities)
            section["max_abs_dp"][name] = float((probabilities - reference[0]).abs().max())
        except StepTimeout:
            section["skipped"][name] = f"stopped: its first calls ran past the step's budget (+{GRACE_S} s)"; return None
        except Exception as e:  # noqa: BLE001 - this path is reported, the others go on
            if not isinstance(e, Skip): traceback.print_exc()
            section["skipped"][name] = (str(e) if isinstance(e, Skip) else f"failed: {type(e).__name__}: {e}")[:500]
            say(f"  {name}: skipped ({section['skipped'][name]})"); return None
        section["times_s"][name] = []
        say(f"  {name}: ready (first call {section['first_s'][name]:.1f} s)")
        return lambda: _timed(call, device)

    def rows():
        ms = {n: 1e3 * median(t) / batch for n, t in section["times_s"].items() if t}
        section["rows"] = [{"path": n, "precision": PRECISION[n], "ms/patch": v, "speed-up": ms["eager"] / v if "eager" in ms else None,
                            "GFLOP/s": flops / v / 1e6, "% of peak": 100 * flops / v / 1e6 / used[PRECISION[n]]["gflops"],
                            "max |dp|": section["max_abs_dp"].get(n), "first call s": section["first_s"].get(n),
                            "rounds": len(section["times_s"][n]), "note": DESCRIPTION[n] + (f" [{section['providers'][n]}]" if n in section["providers"] else "")}
                           for n, v in ms.items()]
        ctx.report.save()

    compiled = "compile_fp16" if cuda else "compile_bf16"
    runs = {n: r for n in ("eager", "channels_last", "fp16_cl", "bf16_cl", "onnx_fp32") if (r := prepare(n))}
    reserve = 0.0 if ctx.smoke else 45.0 if cuda else 240.0   # time kept for compiling
    in_turns(runs, section["times_s"], rounds, budget, section, rows, reserve)
    run = prepare(compiled)
    if run:   # its rounds in turns with eager fp32 and the same path uncompiled
        pair = {n: runs[n] for n in ("eager", "fp16_cl" if cuda else "bf16_cl") if n in runs}
        in_turns({**pair, compiled: run}, section["times_s"], rounds, budget, section, rows, 0.0, f"{compiled}: ")
    rows()
    for r in section["rows"]: say(f"{r['path']:<14} {r['ms/patch']:8.3f} ms/patch  speed-up {r['speed-up']:.2f}  {r['% of peak']:5.1f} % of {r['precision']} peak")


def _timed(call, device: torch.device) -> float:
    "Seconds of one call, the device synchronised before and after."
    sync(device); start = time.perf_counter(); call(); sync(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- step 3: a full tile
def make_tile(path: Path, size: int, rows: int=512, seed: int=0) -> Path:
    """A size x size, 11-band float32 scene on a 10 m UTM grid, tiled 256² and uncompressed, as scene_inference.make_scene
    writes it (smooth field x band gains + noise), strip by strip (memory bounded by one strip); the noise of one strip is
    drawn once and shifted for the others, which makes writing 5 GB take seconds, not minutes."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    if path.exists(): return path
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.5, 1.5, (11, 1, 1)).astype(np.float32)
    noise = rng.normal(0, 0.003, (11, min(rows, size), size)).astype(np.float32)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": 11, "dtype": "float32", "crs": CRS.from_epsg(32616),
               "transform": from_origin(600_000.0, 1_800_000.0, 10.0, 10.0), "tiled": True, "blockxsize": 256,
               "blockysize": 256, "BIGTIFF": "IF_SAFER"}
    tmp = path.with_name(path.name + ".tmp")
    xx = np.arange(size, dtype=np.float32)[None, :] / 40
    with rasterio.open(tmp, "w", **profile) as dst:
        for n, y in enumerate(range(0, size, rows)):
            h = min(rows, size - y)
            yy = np.arange(y, y + h, dtype=np.float32)[:, None] / 40
            block = (0.04 + 0.03 * np.sin(yy) * np.cos(xx))[None] * gains
            block += np.roll(noise[:, :h], 37 * n, axis=2)
            dst.write(block, window=Window(0, y, size, h))
    os.replace(tmp, path)
    return path


STAGE_FUNCTIONS = {   # marine_unet.infer function (or Class.method) -> the part of the time it goes to
    "_StripReader.next": "read",                  # the main thread waiting for the reader thread's next strip
    "_read_strip": "reader thread",               # reading, masking, normalising a strip on the reader thread (overlaps the rest)
    "members_probabilities": "network", "_finish_strip": "argmax", "_save_strip": "write strips", "_commit_memmap": "write strips",
    "_predict_strips": "strips", "_assemble": "write map", "_resume_key": "weights digest",
}


@contextlib.contextmanager
def stage_timers(infer, spent: dict, device: torch.device):
    "Wrap marine_unet.infer's functions (looked up at each call) so that their seconds add up in `spent`; put back after."
    originals = {}
    for name in STAGE_FUNCTIONS:   # a function of the module, or Class.method of a class of it
        owner_name, _, attribute = name.rpartition(".")
        owner = getattr(infer, owner_name, None) if owner_name else infer
        if hasattr(owner, attribute): originals[name] = (owner, attribute, getattr(owner, attribute))
    lock = threading.Lock()                       # the reader thread adds up its seconds too
    for name, (owner, attribute, function) in originals.items():
        network = STAGE_FUNCTIONS[name] == "network"
        def timed(*args, _f=function, _name=name, _network=network, **kwargs):
            if _network: sync(device)
            start = time.perf_counter()
            try: return _f(*args, **kwargs)
            finally:
                if _network: sync(device)
                with lock: spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - start
        setattr(owner, attribute, timed)
    try: yield sorted(set(STAGE_FUNCTIONS) - set(originals))
    finally:
        for name, (owner, attribute, function) in originals.items(): setattr(owner, attribute, function)


def split_stages(spent: dict, total: float) -> dict:
    """Seconds of read / network / blend / write / other from the wrapped functions' seconds. Reading runs on a reader
    thread, overlapping the network: `read` is the time the strip loop waited for it; `reader_thread` (not part of the
    sum) is the time the thread spent reading, masking and normalising."""
    part = lambda stage: sum(v for k, v in spent.items() if STAGE_FUNCTIONS[k] == stage)
    read, network, argmax = part("read"), part("network"), part("argmax")
    strips_written, strips = part("write strips"), part("strips")
    write = strips_written + part("write map")
    blend = strips - read - network - strips_written   # the strip loop's own work: batching, weights, sums, carries, the arg-max
    return {"read": read, "network": network, "blend": blend, "argmax": argmax, "write": write,
            "other": total - strips - part("write map"), "weights_digest": part("weights digest"), "reader_thread": part("reader thread")}


def step_scene(ctx, section: dict, budget: Budget):
    import marine_unet.infer as infer
    from marine_unet.infer import as_model, predict_scene, tile_origins
    device, a = ctx.device, ctx.args
    cuda = device.type == "cuda"
    size = 384 if ctx.smoke else a.scene_size   # --smoke: 2 x 2 tiles, blended
    batch = a.scene_batch or (32 if cuda else 8)
    precisions = [p.strip() for p in a.scene_precisions.split(",")] if a.scene_precisions else ["fp32", "fp16" if cuda else "bf16"]
    runs = a.scene_runs or (1 if ctx.smoke else 2 if cuda else 1)
    start = time.perf_counter()
    scene = make_tile(ctx.work/f"tile_{size}.tif", size)
    write_s = time.perf_counter() - start
    tiles = len(tile_origins(size, 256, 32)) ** 2
    section.update(size=size, tiles=tiles, tile=256, overlap=32, batch_size=batch, scene_write_s=write_s,
                   scene_bytes=scene.stat().st_size, runs={})
    say(f"  wrote the {size}² scene ({scene.stat().st_size / 2**30:.2f} GiB) in {write_s:.1f} s")
    section["notes"].append(f"synthetic {size}² 11-band float32 tile ({scene.stat().st_size / 2**30:.2f} GiB, tiled 256², uncompressed), "
                            f"just written, so read from the page cache; untrained U-Net ResNet-34; tile 256, overlap 32, batch_size {batch}; "
                            f"{tiles} tiles; written in {write_s:.1f} s")
    section["notes"].append("read = the strip loop waiting for the reader thread's next strip (reading, no-data and normalising run on that "
                            "thread, overlapping the network: 'reader thread s', not part of the sum); network = members_probabilities "
                            "(copy to the device, forward, softmax, copy back; CUDA synchronised); blend = the rest of the strip loop "
                            "(batching, weights, sums, carries) with the arg-max; write = strips saved and the map written; "
                            "other = setup (model, weights digest, checks, lock)")
    pair = as_model(scene_model(ctx), device)
    if not ctx.smoke:   # load each precision's kernels first, on a small scene
        small = make_tile(ctx.work/"tile_512.tif", 512)
        for precision in precisions:
            predict_scene(pair, small, ctx.work/f"warm_{precision}.tif", batch_size=batch, device=device, precision=precision,
                          overwrite=True, progress=False)

    def rows():
        section["rows"] = [{"precision": r["precision"], "run": r["run"], "tiles": tiles, "seconds": r["seconds"], "tiles/s": tiles / r["seconds"],
                            "read s": r["split"]["read"], "network s": r["split"]["network"], "blend s": r["split"]["blend"],
                            "write s": r["split"]["write"], "other s": r["split"]["other"], "network share": r["split"]["network"] / r["seconds"],
                            "reader thread s": r["split"]["reader_thread"]}
                           for rs in section["runs"].values() for r in rs]
        ctx.report.save()
    for n in range(runs):
        for precision in precisions:
            done = section["runs"].get(precision, [])
            if n and not budget.fits(1.5 * max(r["seconds"] for r in done)):
                section["notes"].append(f"{precision}: {n} of {runs} runs, the budget ran short"); continue
            spent = {}; reset_gpu_peak(device)
            with stage_timers(infer, spent, device) as missing:
                sync(device); begin = time.perf_counter()
                predict_scene(pair, scene, ctx.work/f"map_{size}_{precision}.tif", tile=256, overlap=32, batch_size=batch, device=device,
                              precision=precision, overwrite=True, progress=False)
                sync(device); seconds = time.perf_counter() - begin
            if missing: section["notes"].append(f"not in this marine_unet.infer, not timed: {missing}")
            split = split_stages(spent, seconds)
            section["runs"].setdefault(precision, []).append({"precision": precision, "run": n + 1, "seconds": seconds, "split": split,
                                                              "functions_s": spent, "gpu_mb": gpu_mb(device)})
            say(f"{size}² {precision} run {n + 1}: {seconds:.1f} s ({tiles / seconds:.0f} tiles/s): " +
                ", ".join(f"{k} {split[k]:.2f} s" for k in ("read", "network", "blend", "write", "other")) +
                f" (arg-max {split['argmax']:.2f} s of blend, weights digest {split['weights_digest']:.2f} s of other)")
            rows()
    rows()


# ---------------------------------------------------------------------------------------------- step 4: determinism
def weights_digest(folder: Path) -> str:
    "SHA-256 (16 hex) of a model folder's tensors, by name."
    from safetensors.torch import load_file
    tensors = load_file(str(folder/"model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors): h.update(name.encode()); h.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str: return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def step_determinism(ctx, section: dict, budget: Budget):
    from marine_unet.synthetic import make_synthetic_marida
    from marine_unet.train import TrainConfig, train
    device = ctx.device
    data = make_synthetic_marida(ctx.work/"determinism_data", scenes=3 if ctx.smoke else 6, patches_per_scene=2 if ctx.smoke else 3,
                                 size=32 if ctx.smoke else 64, seed=0, overwrite=True)
    epochs = 2 if ctx.smoke else 3
    arch = "marida_unet" if ctx.smoke else TrainConfig.arch   # --smoke: the 0.8 M-parameter U-Net (its checkpoints are small)
    base = TrainConfig(data_dir=str(data), arch=arch, epochs=epochs, batch_size=4, device=device.type, progress=False, tensorboard=False,
                       cache=False, seed=0)
    folder = lambda name: ctx.work/f"determinism_{name}"
    for name in ("a", "b", "c"): shutil.rmtree(folder(name), ignore_errors=True)
    section["notes"].append(f"{arch} ({base.encoder if arch != 'marida_unet' else 'its own encoder'}) on synthetic data {data.name}: "
                            f"{epochs} epochs, batch 4, seed 0, precision auto, deterministic kernels (TrainConfig defaults); "
                            f"run a and b the same; run c stopped after epoch 1 (stop_after=1), then resumed")
    result = {}
    for name, extra in (("a", {}), ("b", {}), ("c", {"stop_after": 1}), ("c", {"resume": True})):
        start = time.perf_counter()
        out = train(dataclasses.replace(base, out_dir=str(folder(name)), **extra))
        say(f"  run {name}{' ' + str(extra) if extra else ''}: {time.perf_counter() - start:.1f} s, {out['epochs_run']} epochs")
        result[name] = out
    if result["c"]["epochs_run"] != epochs or not result["c"]["finished"]: raise RuntimeError(f"the resumed run ended after {result['c']['epochs_run']} epochs")
    digests = {name: {"last_model": weights_digest(folder(name)/"last_model"), "best_model": weights_digest(folder(name)/"best_model"),
                      "metrics.json": file_digest(folder(name)/"metrics.json")} for name in ("a", "b", "c")}
    checks = [("same seed twice: metrics.json", "a", "b", "metrics.json"), ("same seed twice: last_model weights", "a", "b", "last_model"),
              ("same seed twice: best_model weights", "a", "b", "best_model"),
              ("stopped + resumed = uninterrupted: last_model weights", "a", "c", "last_model"),
              ("stopped + resumed = uninterrupted: metrics.json", "a", "c", "metrics.json")]
    section["digests"] = digests
    section["rows"] = [{"check": check, "equal": digests[x][what] == digests[y][what], "first": digests[x][what], "second": digests[y][what]}
                       for check, x, y, what in checks]
    section["all_equal"] = all(r["equal"] for r in section["rows"])
    for r in section["rows"]: say(f"{r['check']:<56} {'equal' if r['equal'] else 'DIFFERENT'} ({r['first']} / {r['second']})")


STEP_FUNCTIONS = {"step1": step_train, "step2": step_patch, "step3": step_scene, "step4": step_determinism}


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run (auto: CUDA if available)")
    p.add_argument("--smoke", action="store_true", help="every step with tiny sizes, torch.compile left out: a check that the script runs, not a measurement")
    p.add_argument("--out", default=str(RESULTS_DIR), help="folder of the results (gpu-<device>-<date>.json and .md)")
    p.add_argument("--only", default="", help="comma-separated steps to run: step1..step4 (or train, patch, scene, determinism); default all")
    p.add_argument("--budgets", default="", help="seconds per step, e.g. step1=200,step3=200 (defaults: %s on CUDA)" % BUDGETS["cuda"])
    p.add_argument("--work", default="", help="scratch folder for models, the scene and runs (default: a temporary one, removed at the end)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--rounds", type=int, default=0, help="timed rounds in turns in steps 1 and 2 (0: 5 and 7 on CUDA, 3 on a CPU, 1 with --smoke)")
    p.add_argument("--batch", type=int, default=0, help="step1: training batch (0: 32 on CUDA, 8 on a CPU, 2 with --smoke)")
    p.add_argument("--steps", type=int, default=0, help="step1: training steps a round (0: 10 on CUDA, 4 on a CPU, 2 with --smoke)")
    p.add_argument("--train-variants", default="", help="step1: comma-separated variants (default all: %s)" % ", ".join(TRAIN_VARIANTS))
    p.add_argument("--patch-batch", type=int, default=0, help="step2: patches a batch (0: 32 on CUDA, 8 on a CPU, 2 with --smoke)")
    p.add_argument("--patch-size", type=int, default=256, help="step2: patch side (64 with --smoke)")
    p.add_argument("--scene-size", type=int, default=10980, help="step3: scene side, pixels (384 with --smoke)")
    p.add_argument("--scene-batch", type=int, default=0, help="step3: predict_scene's batch_size (0: 32 on CUDA, 8 on a CPU)")
    p.add_argument("--scene-precisions", default="", help="step3: comma-separated precisions (default fp32,fp16 on CUDA, fp32,bf16 on a CPU)")
    p.add_argument("--scene-runs", type=int, default=0, help="step3: runs per precision, budget allowing (0: 2 on CUDA, 1 on a CPU)")
    args = p.parse_args(argv)
    keys = [ALIASES.get(k.strip(), k.strip()) for k in args.only.split(",") if k.strip()] or list(STEPS)
    bad = [k for k in keys if k not in STEPS]
    if bad: p.error(f"--only: unknown steps {bad}; choose from {list(STEPS)} or {list(ALIASES)}")
    args.steps_to_run = [k for k in STEPS if k in keys]
    unknown = [v.strip() for v in args.train_variants.split(",") if v.strip() and v.strip() not in TRAIN_VARIANTS]
    if unknown: p.error(f"--train-variants: unknown {unknown}; choose from {list(TRAIN_VARIANTS)}")
    try: args.budget_overrides = {ALIASES.get(k, k): float(v) for k, v in (item.split("=") for item in args.budgets.split(",") if item.strip())}
    except ValueError: p.error(f"--budgets {args.budgets!r}: give step=seconds pairs, e.g. step1=200,step3=200")
    if set(args.budget_overrides) - set(STEPS): p.error(f"--budgets: unknown steps {sorted(set(args.budget_overrides) - set(STEPS))}")
    return args


class Context:
    "What the steps share: arguments, device, scratch folder, report and the peaks measured so far."
    def __init__(self, args, device, work, report):
        self.args, self.device, self.work, self.report, self.smoke, self.peaks = args, device, work, report, args.smoke, {}


def device_name(device: torch.device, info: dict) -> str:
    "The device's name for the file name: the GPU's (NVIDIA H200 -> nvidia-h200), or cpu-<model>."
    return slug(torch.cuda.get_device_name(device)) if device.type == "cuda" else slug("cpu " + info["cpu"], 40)


def main(argv=None) -> int:
    args = parse_args(argv)
    threads, device = set_threads(args.threads), pick_device(args.device)
    if device.type == "cuda" and device.index is None: device = torch.device("cuda", torch.cuda.current_device())
    info = machine_info(device)
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        props = torch.cuda.get_device_properties(device)
        info.update(gpu_memory_free_gib=free / 2**30, gpu_memory_total_gib=total / 2**30, gpu_capability=list(torch.cuda.get_device_capability(device)),
                    gpu_multiprocessors=props.multi_processor_count, tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    tf32_cudnn=torch.backends.cudnn.allow_tf32)
    name = device_name(device, info)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    data = {"script": "bench/gpu.py", "command": command_line(), "smoke": args.smoke, "device_name": name, "date": date,
            "machine": info, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"), "threads": threads, "peaks": {}, "steps": {}}
    report = Report(out, f"gpu-{name}-{date}" + ("_quick" if args.smoke else ""), data)
    budgets = {**BUDGETS["smoke" if args.smoke else "cuda" if device.type == "cuda" else "cpu"], **args.budget_overrides}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="marine_unet_gpu_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(args, device, work, report)
    say(f"device {device} ({info.get('gpu', info['cpu'])}), torch {info['torch']}, {threads} threads; steps {args.steps_to_run}; "
        f"results: {report.json}")
    failed = []
    try:
        for key in args.steps_to_run:
            section, budget = report.step(key, budgets[key]), Budget(budgets[key])
            say(f"\n== {key}: {STEPS[key]} (budget {budgets[key]:.0f} s)")
            try:
                with hard_limit(budgets[key] + GRACE_S): STEP_FUNCTIONS[key](ctx, section, budget)
                section["status"] = "ok"
            except (Exception, StepTimeout) as e:  # noqa: BLE001 - report, go on with the next step
                if not isinstance(e, StepTimeout): traceback.print_exc()
                section["status"] = "timed out" if isinstance(e, StepTimeout) else "failed"
                section["error"] = f"{type(e).__name__}: {e}"[:2000]; failed.append(key)
                say(f"{key} {section['status']}: {section['error']}")
            finally:
                section["seconds"] = budget.used(); restore_torch_defaults()
                if device.type == "cuda": torch.cuda.empty_cache()
                report.save()
    finally:
        if not args.work: shutil.rmtree(work, ignore_errors=True)
    say(f"\n{report.md.read_text()}\nwrote {report.json} and {report.md}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

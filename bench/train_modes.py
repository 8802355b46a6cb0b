"""Training throughput by arithmetic and execution mode (issue 20): samples/s of the project's `train_one_epoch` on
the default model (TrainConfig defaults: U-Net ResNet-18, 11 bands + the 8 spectral indices, batch 8 of the
synthetic default dataset's patches, AdamW, combined loss), on the same pre-loaded batches, for:

- fp32 eager as filed: fp32, NCHW, the plain first convolution (input gradient for every channel), torch's for-loop
  AdamW, every new tensor NaN-filled by torch's deterministic mode, and, with `--reference-loss REV`, the loss module
  as it was at git revision REV (e.g. ed9e7d6, before the combined loss's terms shared one preparation): the step
  issue 20 calls "today's", which every row is compared with;
- fp32 eager and channels-last with today's code;
- bf16 autocast in NCHW: what `precision="auto"` is on a CPU with native bf16, the default until 2026-12-01; and the
  same with the plain first convolution, with the NaN fill, and with torch's multi-tensor (foreach) or fused AdamW;
- bf16 channels-last (the default since 2026-12-01, `channels_last=True`, on a CPU with native bf16; on one without,
  `precision="auto"` is fp32, so fp32 channels-last is the default there: the table marks the row `TrainConfig()`
  runs on this machine "(default here)"); `torch.compile` (inductor) in fp32 and bf16; narrower U-Net decoders
  (`model_kwargs`).

Variants run in turns over repeats (repeat 0 warms up, and compiles), so the machine's drift hits each alike. The
figures are the median ms per step, samples/s, the ratio to the as-filed step and to bf16 eager, and GFLOP/s as a
share of the machine's measured peak in the same arithmetic (common.peak). Training FLOPs are taken as 3 x the
forward pass's: the forward, plus the backward's two products per layer.

    python bench/train_modes.py                    # 6 steps a repeat, 7 repeats
    python bench/train_modes.py --quick            # smoke run
    python bench/train_modes.py --reference-loss ed9e7d6 --skip-compile --skip-decoders   # as filed, with the loss of then
"""
from __future__ import annotations
import copy, dataclasses, json, statistics, subprocess, sys, time, types
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403
import torch

from marine_unet.core import set_seed
from marine_unet.forward import autocast_dtype, precision_name, cpu_has_native_bf16
from marine_unet.synthetic import synthetic_marida_dir
from marine_unet.model import build_model
from marine_unet.loss import build_loss
from marine_unet.train import (TrainConfig, check_config, build_optimizer, build_scheduler, train_one_epoch, epoch_loader,
                               make_train_val_datasets, _class_weight_vector)

HALF_DECODER = {"decoder_channels": [128, 64, 32, 16, 8]}     # smp's default decoder (256, 128, 64, 32, 16) at half width
QUARTER_DECODER = {"decoder_channels": [64, 32, 16, 16, 16]}
FP32_FILED, BF16_EAGER = "fp32 eager as filed", "bf16 eager (NCHW)"   # the reference rows: always run, ratios to each


def loss_at(rev: str) -> types.ModuleType:
    "marine_unet's loss module as it was at git revision `rev`, loaded under another name beside today's."
    source = subprocess.run(["git", "show", f"{rev}:marine_unet/loss.py"], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout
    module = types.ModuleType(f"loss_at_{rev}")
    exec(compile(source.replace("from .core import", "from marine_unet.core import"), f"marine_unet/loss.py@{rev}", "exec"), module.__dict__)
    return module


VARIANTS = {   # name -> how it differs from the bf16 eager NCHW step
    FP32_FILED: dict(precision="fp32", stem=False, fill=True, old_loss=True),
    "fp32 eager": dict(precision="fp32"),
    "fp32 channels-last": dict(precision="fp32", channels_last=True),
    BF16_EAGER: dict(),
    "bf16 eager, foreach AdamW": dict(foreach=True),
    "bf16 eager, plain stem": dict(stem=False),
    "bf16 eager, NaN fill of new tensors": dict(fill=True),
    "bf16 eager, fused AdamW": dict(fused=True),
    "bf16 channels-last": dict(channels_last=True),
    "fp32 compile": dict(precision="fp32", compile=True),
    "bf16 compile": dict(compile=True),
    "bf16 channels-last, half decoder": dict(channels_last=True, model_kwargs=HALF_DECODER),
    "bf16 channels-last, quarter decoder": dict(channels_last=True, model_kwargs=QUARTER_DECODER),
    "bf16 eager, half decoder": dict(model_kwargs=HALF_DECODER),
}
DEFAULTS = dict(precision="bf16", channels_last=False, compile=False, model_kwargs={}, stem=True, foreach=False, fused=False, fill=False,
                old_loss=False)


def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=6, help="training steps per timed repeat")
    p.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile variants")
    p.add_argument("--only", nargs="*", default=None, help="variant names to run (fp32 eager as filed always runs, and bf16 eager where the CPU has native bf16, for the ratios)")
    p.add_argument("--skip-decoders", action="store_true", help="leave out the narrower-decoder variants")
    p.add_argument("--name", default="train_modes", help="results file name (results/NAME.json)")
    p.add_argument("--reference-loss", default="", help="git revision whose loss module to time too (fp32 and bf16 eager rows)")
    args = p.parse_args()
    threads = set_threads(args.threads); device = pick_device(args.device)
    repeats, nb = (1, 2) if args.quick else (args.repeats, args.batches)
    cfg = check_config(TrainConfig(device=device.type, progress=False))
    set_seed(cfg.seed, cfg.deterministic)
    info = machine_info(device)
    root = synthetic_marida_dir()
    train_ds, _, mean, std = make_train_val_datasets(root, cfg)
    loss_fn = build_loss(cfg.loss, class_weights=_class_weight_vector(cfg, train_ds))
    old_loss_fn = loss_at(args.reference_loss).build_loss(cfg.loss, class_weights=_class_weight_vector(cfg, train_ds)) if args.reference_loss else None
    batches = []
    for b in epoch_loader(train_ds, cfg, 1):
        batches.append(b)
        if len(batches) >= nb: break
    def build(model_kwargs: dict):
        set_seed(cfg.seed, cfg.deterministic)
        return build_model(cfg.arch, encoder=cfg.encoder, in_channels=len(cfg.bands), classes=cfg.protocol, bands=list(cfg.bands),
                           features=cfg.features, mean=mean, std=std, **model_kwargs).to(device)
    variants = {k: DEFAULTS | v for k, v in VARIANTS.items()}
    bf16_fast = device.type == "cuda" or cpu_has_native_bf16()   # else bf16 is emulated, far slower than fp32: only with --only
    wanted = lambda k, v: not ((args.skip_compile or args.quick) and v["compile"] or args.skip_decoders and v["model_kwargs"]
                               or args.only and k not in args.only)
    emulated = lambda k, v: v["precision"] == "bf16" and not bf16_fast and k not in (args.only or ())
    keep = lambda k, v: k == FP32_FILED or (k == BF16_EAGER or wanted(k, v)) and not emulated(k, v)
    variants = {k: v for k, v in variants.items() if keep(k, v)}
    bases = {json.dumps(v["model_kwargs"]): build(v["model_kwargs"]) for v in variants.values()}
    flops_of = {key: forward_flops(copy.deepcopy(m).eval(), batches[0]["image"][:1].to(device))["flops_per_sample"] * 3 for key, m in bases.items()}
    flops = flops_of[json.dumps({})]
    state = {}
    for name, v in variants.items():
        model = copy.deepcopy(bases[json.dumps(v["model_kwargs"])])
        if not v["stem"]: model.net.get_submodule(model.stem_name).__class__ = torch.nn.Conv2d   # the plain first conv
        if v["channels_last"]: model = model.to(memory_format=torch.channels_last)
        run_cfg = dataclasses.replace(cfg, precision=v["precision"], channels_last=v["channels_last"])
        opt = build_optimizer(model.parameters(), run_cfg)   # today's: torch's for-loop AdamW on the CPU
        if kind := {k: True for k in ("fused", "foreach") if v[k]}:   # torch's fused or multi-tensor AdamW instead
            opt = torch.optim.AdamW(model.parameters(), lr=run_cfg.lr, weight_decay=run_cfg.weight_decay, **kind)
        loss = old_loss_fn if v["old_loss"] and old_loss_fn is not None else loss_fn
        state[name] = (torch.compile(model) if v["compile"] else model, opt, build_scheduler(opt, run_cfg, len(batches)), run_cfg,
                       autocast_dtype(v["precision"], device), loss)
    times = {name: [] for name in variants}
    for rep in range(repeats + 1):
        for name in variants:
            model, opt, sch, run_cfg, dtype, loss = state[name]
            torch.utils.deterministic.fill_uninitialized_memory = variants[name]["fill"]
            t0 = time.perf_counter()
            train_one_epoch(model, batches, loss, opt, run_cfg, device, dtype, None, sch)
            sync(device); dt = (time.perf_counter() - t0) / len(batches)
            if rep: times[name].append(dt)
            print(f"repeat {rep} {name}: {1e3 * dt:.0f} ms/step" + (" (warm-up)" if not rep else ""), flush=True)
    peaks = {p: peak(dtype, device=device) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))   # emulated bf16: no
             if any(v["precision"] == p for v in variants.values()) and (p == "fp32" or bf16_fast)}       # peak (it takes minutes)
    step = {name: statistics.median(t) for name, t in times.items()}
    rows, default_precision = [], precision_name(autocast_dtype("auto", device))   # bf16 where the CPU has native bf16, else fp32
    for name, v in variants.items():
        rate, flops_here = cfg.batch_size / step[name], flops_of[json.dumps(v["model_kwargs"])]
        here = v == DEFAULTS | dict(precision=default_precision, channels_last=True)   # what TrainConfig() runs on this machine
        rows.append({"mode": name + (" (default here)" if here else ""), "ms/step": 1e3 * step[name], "samples/s": rate, "× as filed": step[FP32_FILED] / step[name],
                     "× bf16 eager": step[BF16_EAGER] / step[name] if BF16_EAGER in step else None, "GFLOP/s": flops_here * rate / 1e9,
                     "% of peak": 100 * flops_here * rate / 1e9 / peaks[v["precision"]]["gflops"] if v["precision"] in peaks else None, "GFLOP a sample": flops_here / 1e9})
    filed = f"{FP32_FILED}: plain first conv, torch's for-loop AdamW, new tensors NaN-filled, " + (f"the loss of {args.reference_loss}" if old_loss_fn else "today's loss")
    header = (f"{filed}; {info['cpu']}, {info['logical_cores']} cores, torch {info['torch']} ({threads} threads); default TrainConfig model, batch "
              f"{cfg.batch_size} of {tuple(batches[0]['image'].shape[-2:])}, {len(batches)} steps a repeat, median of {repeats}; "
              "peaks: " + ", ".join(f"{p} {r['gflops']:.0f} GFLOP/s ({r['source']})" for p, r in peaks.items()) + "; "
              f"training FLOPs = 3 x forward ({flops / 1e9:.2f} GFLOP a sample)")
    text = f"{header}\n\n{markdown_table(rows)}\n{command_line()}"
    print(text)
    write_results(f"{args.name}_quick" if args.quick else args.name,
                  {"machine": info, "command": command_line(), "threads": threads, "steps_per_repeat": len(batches), "repeats": repeats,
                   "train_flops_per_sample": flops, "peaks": peaks, "step_seconds": {n: {"median": step[n], "times": times[n]} for n in step},
                   "rows": rows, "table": text})


if __name__ == "__main__":
    main()

"""Training benchmark: step time of the project's training loop vs a minimal hand-written loop (same model, batch,
optimizer, loss, same pre-loaded batches), and data-loader samples/s (cache on/off, workers) vs the step's consumption.

    python bench/training.py              # default TrainConfig model (U-Net ResNet-18, batch 8, AdamW, combined loss)
    python bench/training.py --encoder resnet34 --batches 12 --repeats 7
    python bench/training.py --quick      # smoke run
"""
from __future__ import annotations
import copy, dataclasses, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403
import numpy as np
import torch
from tqdm.auto import tqdm

from marine_unet.core import BAND_NAMES
from marine_unet.core import set_seed
from marine_unet.data import MaridaDataset
from marine_unet.synthetic import synthetic_marida_dir
from marine_unet.model import build_model
from marine_unet.loss import build_loss
from marine_unet.train import (TrainConfig, check_config, build_optimizer, build_scheduler, train_one_epoch, epoch_loader,
                               make_train_val_datasets, _class_weight_vector)

def minimal_epoch(model, batches, loss_fn, optimizer, device):
    "The minimal hand-written loop: zero_grad, forward, loss, backward, step; nothing else."
    model.train()
    for batch in batches:
        x, y = batch["image"].to(device), batch["mask"].to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y, None)
        loss.backward()
        optimizer.step()

def project_epoch(model, batches, loss_fn, optimizer, scheduler, cfg, device, progress: bool):
    "The project's marine_unet.train.train_one_epoch, with a tqdm bar as train() gives it."
    with tqdm(total=len(batches), disable=not progress, leave=False, file=sys.stderr) as bar:
        train_one_epoch(model, batches, loss_fn, optimizer, cfg, device, None, None, scheduler, None, None, bar if progress else None)

def loader_rate(dataset, cfg: TrainConfig, batches: int, repeats: int) -> dict:
    "Samples per second drawn through the training DataLoader (epoch_loader, as train() builds it), median of repeats."
    def run():
        n = 0
        for i, b in enumerate(epoch_loader(dataset, cfg, 1)):
            n += len(b["image"])
            if i + 1 >= batches: break
        return n
    n = run()  # warm-up (fills the .npy cache when cache=True; workers start)
    t = time_fn(run, repeats=repeats, warmup=0)
    return {"samples": n, "median_s": t["median_s"], "samples_per_s": n / t["median_s"], "times_s": t["times_s"]}

def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--encoder", default=TrainConfig().encoder, help="encoder of the U-Net (default: TrainConfig's)")
    p.add_argument("--batch", type=int, default=TrainConfig().batch_size, help="batch size")
    p.add_argument("--batches", type=int, default=8, help="training steps per timed repeat")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to measure")
    args = p.parse_args()
    threads = set_threads(args.threads); device = pick_device(args.device)
    repeats, nb = (2, 3) if args.quick else (args.repeats, args.batches)
    cfg = check_config(TrainConfig(encoder=args.encoder, batch_size=args.batch, device=device.type, progress=True))
    set_seed(cfg.seed, cfg.deterministic)   # check_config no longer seeds; the model below starts from the seed as before
    info = machine_info(device)
    root = synthetic_marida_dir(); bands = list(BAND_NAMES)
    train_ds, _, _, _ = make_train_val_datasets(root, cfg, bands)
    loss_fn = build_loss(cfg.loss, class_weights=_class_weight_vector(cfg, train_ds))
    batches = []   # the same pre-loaded, augmented batches for both loops: loop overhead only, no data loading
    for b in epoch_loader(train_ds, cfg, 1):
        batches.append(b)
        if len(batches) >= nb: break
    base = build_model(cfg.arch, encoder=cfg.encoder, in_channels=len(bands), classes=cfg.protocol).to(device)

    def fresh(variant_cfg):
        m = copy.deepcopy(base); opt = build_optimizer(m.parameters(), variant_cfg)
        return m, opt, build_scheduler(opt, variant_cfg, len(batches))
    variants = {"minimal loop": None,
                "project loop (train_one_epoch, defaults)": dataclasses.replace(cfg),
                "project loop, no progress bar": dataclasses.replace(cfg, progress=False),
                "project loop, clip_grad=0": dataclasses.replace(cfg, clip_grad=0.0),
                "project loop, clip_grad=0, no bar": dataclasses.replace(cfg, clip_grad=0.0, progress=False)}
    if args.quick: variants = {k: v for i, (k, v) in enumerate(variants.items()) if i < 3}
    state = {name: fresh(v or cfg) for name, v in variants.items()}
    times = {name: [] for name in variants}
    for rep in range(repeats + 1):   # interleaved, so machine noise hits every variant alike; repeat 0 is warm-up
        for name, v in variants.items():
            m, opt, sch = state[name]
            t0 = time.perf_counter()
            if v is None: minimal_epoch(m, batches, loss_fn, opt, device)
            else: project_epoch(m, batches, loss_fn, opt, sch, v, device, v.progress)
            sync(device); dt = (time.perf_counter() - t0) / len(batches)
            if rep: times[name].append(dt)
    import statistics
    step = {name: statistics.median(t) for name, t in times.items()}
    mini = step["minimal loop"]
    rows = [{"loop": n, "ms/step": 1e3 * s, "ratio vs minimal": s / mini, "samples/s": args.batch / s} for n, s in step.items()]
    proj = step["project loop (train_one_epoch, defaults)"]
    step_rate = args.batch / proj

    lrows, lres = [], {}
    for cache in (True, False):
        for w in args.workers:
            ds = MaridaDataset(root, "train", bands, cfg.protocol, (train_ds.mean, train_ds.std), train_ds.transform, cache=cache)
            r = loader_rate(ds, dataclasses.replace(cfg, num_workers=w), min(nb, 3) if args.quick else nb, repeats)
            lres[f"cache={cache},workers={w}"] = r
            lrows.append({"loader": f"cache={'on' if cache else 'off'}, num_workers={w}", "samples/s": r["samples_per_s"],
                          "× step consumption": r["samples_per_s"] / step_rate})
    overhead = proj / mini
    best_loader = max(lrows, key=lambda r: r["samples/s"])
    default_loader = lrows[0]
    verdict = (f"project loop / minimal loop = {overhead:.3f} (target <= 1.05: {'MET' if overhead <= 1.05 else 'NOT met'}); "
               f"default loader (cache on, 0 workers) = {default_loader['× step consumption']:.1f}x the step's {step_rate:.1f} samples/s "
               f"(target >= 3x: {'MET' if default_loader['× step consumption'] >= 3 else 'NOT met'}); best: {best_loader['loader']} {best_loader['× step consumption']:.1f}x")
    header = (f"{info['cpu']}, {info['logical_cores']} cores, torch {info['torch']} ({threads} threads), device {device}; "
              f"U-Net {cfg.encoder}, batch {args.batch}, {cfg.optimizer}, loss {cfg.loss}, {len(batches)} pre-loaded {tuple(batches[0]['image'].shape[-2:])} batches per repeat, median of {repeats}")
    text = f"{header}\n\n{markdown_table(rows)}\n\n{markdown_table(lrows)}\n\n{verdict}\n{command_line()}"
    print(text)
    out = {"machine": info, "command": command_line(), "config": dataclasses.asdict(cfg), "steps_per_repeat": len(batches), "repeats": repeats,
           "step_seconds": {n: {"median": step[n], "times": times[n]} for n in step}, "overhead_ratio": overhead,
           "step_samples_per_s": step_rate, "loaders": lres, "verdict": verdict, "table": text}
    print(f"wrote {write_results('training_quick' if args.quick else f'training_{device.type}', out)}")

if __name__ == "__main__":
    main()

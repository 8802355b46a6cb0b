"""What checkpointing costs a training run (issue 20): the default TrainConfig run on the synthetic default dataset,
a few epochs at a time, with a checkpoint after every epoch (`checkpoint_seconds=0`, the behaviour before the
option existed) and with the default cadence (`checkpoint_seconds=60`: here one checkpoint, after the last epoch),
in turns, so the machine's drift hits both alike. Each run is timed whole (start-up included) and by its epochs'
own `seconds` (training and validation only); the difference is what the writing costs.

    python bench/checkpoint_cost.py                 # 8 epochs a run, 3 runs of each
    python bench/checkpoint_cost.py --quick         # smoke run
"""
from __future__ import annotations
import shutil, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403

from marine_unet.train import TrainConfig, train

CADENCES = {"every epoch (checkpoint_seconds=0)": 0.0, "default (checkpoint_seconds=60)": 60.0}


def timed_run(out_dir: Path, epochs: int, seconds: float, device: str) -> dict[str, float]:
    "Train the default configuration for `epochs` into `out_dir`; wall seconds per epoch, and the epochs' own seconds."
    t0 = time.perf_counter()
    result = train(TrainConfig(out_dir=str(out_dir), epochs=epochs, checkpoint_seconds=seconds, device=device, progress=False))
    wall = time.perf_counter() - t0
    return {"wall_per_epoch": wall / epochs, "epoch_seconds": statistics.mean(h["seconds"] for h in result["history"])}


def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8, help="epochs a run")
    p.set_defaults(repeats=3)
    args = p.parse_args()
    threads = set_threads(args.threads); device = pick_device(args.device)
    epochs, repeats = (2, 1) if args.quick else (args.epochs, args.repeats)
    work = Path(tempfile.mkdtemp(prefix="checkpoint_cost_"))
    times = {name: [] for name in CADENCES}
    try:
        for rep in range(repeats):
            for name, seconds in CADENCES.items():
                out = work/f"{rep}-{seconds:g}"
                times[name].append(timed_run(out, epochs, seconds, device.type))
                shutil.rmtree(out)
                print(f"repeat {rep} {name}: {times[name][-1]['wall_per_epoch']:.2f} s an epoch", flush=True)
    finally: shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name, runs in times.items():
        wall, inner = statistics.median(r["wall_per_epoch"] for r in runs), statistics.median(r["epoch_seconds"] for r in runs)
        rows.append({"checkpoints": name, "s an epoch (wall, start-up included)": wall, "of which training + validation": inner,
                     "writing and the rest": wall - inner})
    every, default = rows
    info = machine_info(device)
    text = (f"{info['cpu']}, {info['logical_cores']} cores, torch {info['torch']} ({threads} threads); default TrainConfig, "
            f"{epochs} epochs a run, median of {repeats} runs each, in turns\n\n{markdown_table(rows)}\n"
            f"default against every epoch: {every['s an epoch (wall, start-up included)'] / default['s an epoch (wall, start-up included)']:.3f}x "
            f"the epochs a second\n{command_line()}")
    print(text)
    write_results("checkpoint_cost_quick" if args.quick else "checkpoint_cost",
                  {"machine": info, "command": command_line(), "threads": threads, "epochs": epochs, "repeats": repeats,
                   "runs": times, "rows": rows, "table": text})


if __name__ == "__main__":
    main()

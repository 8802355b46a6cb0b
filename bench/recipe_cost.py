"""Recipe cost: seconds per training epoch (training steps, data loading, validation: what `train()` does) of
TrainConfig variants against today's defaults, side by side in one process with interleaved repeats.

    python bench/recipe_cost.py                                              # defaults vs the bands alone (features=none)
    python bench/recipe_cost.py --variant "bf16=precision=bf16" --variant "e80=epochs=80"
    python bench/recipe_cost.py --quick                                      # smoke run

Each repeat trains every variant for --epochs epochs from the same seed on the synthetic default family (or
--family); the first epoch of each training is warm-up and not counted. A variant's cost is the median of its
epochs' seconds; the ratio to the defaults is what a full training costs in CPU time, for the same number of epochs.
"""
from __future__ import annotations
import statistics, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403
import json

from marine_unet.synthetic import SYNTHETIC_FAMILIES, synthetic_marida_dir
from marine_unet.train import TrainConfig, train
from quality import parse_overrides

def parse_variant(item: str) -> tuple[str, dict]:
    "'LABEL=FIELD=VALUE[;FIELD=VALUE...]' as (label, TrainConfig overrides)."
    label, sep, rest = item.partition("=")
    if not sep or not rest: raise SystemExit(f"--variant {item!r}: expected LABEL=FIELD=VALUE[;FIELD=VALUE...]")
    return label, parse_overrides(rest.split(";"), option=f"--variant {label}:")

def epoch_seconds(overrides: dict, epochs: int, work: Path) -> list[float]:
    "Train TrainConfig(**overrides) for `epochs` epochs into a fresh folder; the seconds of each epoch after the first."
    out = Path(tempfile.mkdtemp(dir=work))
    train(TrainConfig(out_dir=str(out / "run"), epochs=epochs, patience=0, progress=False, **overrides))
    history = json.loads((out / "run" / "history.json").read_text())
    return [float(h["seconds"]) for h in history[1:]]

def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4, help="epochs a training (the first is warm-up)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=FIELD=VALUE[;FIELD=VALUE]", help="a variant to time (repeatable)")
    p.add_argument("--family", default="default", choices=tuple(SYNTHETIC_FAMILIES), help="synthetic dataset family")
    p.add_argument("--name", default="", help="results file name (results/NAME.json); empty: recipe_cost[_quick][_FAMILY]")
    args = p.parse_args()
    threads = set_threads(args.threads); device = pick_device(args.device)
    variants = dict([("today's defaults", {})] + [parse_variant(v) for v in (args.variant or ["bands only=features=none"])])
    repeats, epochs = (1, 2) if args.quick else (args.repeats, args.epochs)
    common = {"device": device.type} | ({"data_dir": str(synthetic_marida_dir(family=args.family))} if args.family != "default" else {})
    times = {label: [] for label in variants}
    with tempfile.TemporaryDirectory(prefix="recipe_cost_") as work:
        for rep in range(repeats):   # interleaved: machine noise hits every variant alike
            for label, overrides in variants.items():
                times[label] += epoch_seconds(common | overrides, epochs, Path(work))
                print(f"repeat {rep}: {label}: {statistics.median(times[label]):.2f} s an epoch so far", flush=True)
    base = statistics.median(times["today's defaults"])
    rows = [{"variant": label, "overrides": ", ".join(f"{k}={v}" for k, v in variants[label].items()) or "–",
             "s/epoch (median)": statistics.median(t), "ratio vs defaults": statistics.median(t) / base, "epochs timed": len(t)}
            for label, t in times.items()]
    info = machine_info(device)
    text = (f"{info['cpu']}, {info['logical_cores']} cores, torch {info['torch']} ({threads} threads), {args.family} family, "
            f"{repeats} interleaved repeats of {epochs} epochs (first of each not counted)\n\n{markdown_table(rows)}\n{command_line()}")
    print(text)
    out = {"machine": info, "command": command_line(), "family": args.family, "variants": variants,
           "epoch_seconds": times, "rows": rows, "table": text}
    name = args.name or "recipe_cost" + ("_quick" if args.quick else "") + ("" if args.family == "default" else f"_{args.family}")
    print(f"wrote {write_results(name, out)}")

if __name__ == "__main__":
    main()

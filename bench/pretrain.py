"""Transfer learning on few scenes: an encoder pretrained on another synthetic dataset vs random initialisation.

1. Pretrain: the default TrainConfig (U-Net ResNet-18, 11 bands + the 8 indices) on the synthetic default-family
   dataset drawn with another seed (`synthetic_marida_dir(seed=1)`: other scenes, other patches), training seed 0;
   its best model's encoder (index channels and their normalisation included) is written with
   `marine_unet.model.save_encoder_weights`.
2. Fine-tune on the default synthetic dataset (seed 0, the one every other benchmark uses) with 25 %, 50 % and
   100 % of its training *scenes* (a nested subset drawn once with a fixed seed; val and test splits unchanged),
   each from random initialisation (TrainConfig defaults) and from the pretrained encoder (`encoder_weights=<file>`,
   default features, `encoder_lr_scale=0.1`: the encoder at a tenth of the decoder's learning rate; nothing else
   changed), for every training seed in --seeds.
3. Score each run's best model (chosen on val by train()) on the test split with marine_unet.evaluate.evaluate_model:
   test macro-F1 and Marine Debris F1 per fraction and initialisation, mean ± std over seeds, and the paired
   difference pretrained − random.

    python bench/pretrain.py                 # seed 0, TrainConfig's epochs
    python bench/pretrain.py --seeds 0 1 2
    python bench/pretrain.py --epochs 40     # fewer epochs for every run, the pretraining included
    python bench/pretrain.py --quick         # smoke run: 2 epochs of 2 batches, seed 0 (about a minute)
    python bench/pretrain.py --family archive --epochs 30 --seeds 0 1 2   # the same design within the archive family
    python bench/pretrain.py --family archive --epochs 30 --seeds 0 1 2 --arms random   # one arm's runs only (no summary)

--family picks the synthetic family of both datasets (pretraining on its seed-1 dataset, fine-tuning on its seed-0
one; results/pretrain.json for the default family, pretrain_<family>.json otherwise). --arms lets two processes
share the runs (one thread each): a call with one arm trains and scores its runs and writes no results; a later
call with both arms reuses every finished run and writes the summary.

Run folders are kept (and reused when finished with the same settings) in bench/results/models/pretrain/.
"""
from __future__ import annotations
import dataclasses, hashlib, json, shutil, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403  (also sets the offline environment variables)
import numpy as np

from marine_unet.data import read_split_ids, scene_of, patch_class_counts
from marine_unet.core import class_names
from marine_unet.model import save_encoder_weights
from marine_unet.synthetic import SYNTHETIC_FAMILIES, synthetic_marida_dir
from marine_unet.train import TrainConfig
from quality import mean_std, unet_run   # noqa: E402  (train + score on test, a finished run reused)

PRETRAIN_DATA_SEED = 1            # the pretraining dataset's seed (the fine-tuning dataset is seed 0)
SUBSET_SEED = 0                   # draws the order in which training scenes enter the subsets
FRACTIONS = (0.25, 0.5, 1.0)      # shares of the fine-tuning dataset's training scenes
FINE_TUNING = {"encoder_lr_scale": 0.1}   # the pretrained arm's settings besides encoder_weights (chosen before any run)
WORK = MODELS_DIR / "pretrain"

def scene_subsets(root: Path, fractions=FRACTIONS, seed: int=SUBSET_SEED) -> dict[float, list[str]]:
    "Nested subsets of root's training scenes: the first round(f * scenes) (at least 1) of one seeded permutation."
    scenes = sorted({scene_of(i) for i in read_split_ids(root, "train")})
    order = [scenes[i] for i in np.random.default_rng(seed).permutation(len(scenes))]
    return {f: sorted(order[:max(1, round(f * len(scenes)))]) for f in fractions}

def subset_dataset(root: Path, scenes: list[str], folder: Path) -> Path:
    "A MARIDA folder whose train split holds only the patches of `scenes` (patches linked, val and test splits as root's)."
    (folder / "splits").mkdir(parents=True, exist_ok=True)
    if not (folder / "patches").exists(): (folder / "patches").symlink_to(root / "patches", target_is_directory=True)
    train = [i for i in read_split_ids(root, "train") if scene_of(i) in set(scenes)]
    (folder / "splits" / "train_X.txt").write_text("".join(f"{i}\n" for i in train))
    for split in ("val", "test"): shutil.copyfile(root / "splits" / f"{split}_X.txt", folder / "splits" / f"{split}_X.txt")
    return folder

def class_pixels(root: Path, ids: list[str]) -> dict[str, int]:
    "Annotated pixels of each class in these patches."
    return dict(zip(class_names(11), map(int, sum(patch_class_counts(root, ids).values()))))

def pretrained_encoder(overrides: dict, work: Path, reuse: bool, family: str="default") -> tuple[dict, Path]:
    "Pretrain (or reuse) on the family's seed-1 dataset; write its best model's encoder to a file named by its content's SHA-256."
    data = synthetic_marida_dir(seed=PRETRAIN_DATA_SEED, family=family)
    run = unet_run(overrides | {"data_dir": str(data)}, 0, work / "pretraining", reuse=reuse)
    tmp = save_encoder_weights(work / "pretraining", work / "encoder.safetensors")
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = tmp.replace(work / f"encoder-{digest[:12]}.safetensors")   # a new pretraining gives a new name: fine-tuned runs are not reused
    return run | {"data": str(data), "encoder_file": str(path), "encoder_sha256": digest}, path

def _figures(run: dict) -> dict:
    s = run["scores"]
    return {"macro_f1": s["macro_f1"], "debris_f1": s["per_class"]["Marine Debris"]["f1"], "miou": s["miou"],
            "val_macro_f1": run["val"]["macro_f1"], "best_epoch": run["best_epoch"], "epochs_run": run["epochs_run"],
            "train_seconds": run["train_seconds"]}

def _cell(stat: dict) -> str:
    if stat["mean"] is None: return "–"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}" if len(stat["values"]) > 1 else f"{stat['mean']:.3f}"

def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="fine-tuning training seeds")
    p.add_argument("--epochs", type=int, default=0, help="epochs of every run, the pretraining included (0 = TrainConfig default)")
    p.add_argument("--no-reuse", action="store_true", help="retrain even where a finished run folder with the same settings exists")
    p.add_argument("--family", default="default", choices=tuple(SYNTHETIC_FAMILIES), help="synthetic family of the pretraining and fine-tuning datasets")
    p.add_argument("--arms", nargs="+", default=["random", "pretrained"], choices=("random", "pretrained"),
                   help="initialisations to run; with one of them the runs are trained and scored but no results are written")
    args = p.parse_args()
    threads, device = set_threads(args.threads), pick_device(args.device)
    common = {"device": device.type} | ({"epochs": args.epochs} if args.epochs else {})
    if args.quick: common |= {"epochs": 2, "max_batches": 2}; args.seeds = args.seeds[:1]
    tag = "quick" if args.quick else f"e{common.get('epochs', TrainConfig.epochs)}"
    work = WORK / (tag if args.family == "default" else f"{args.family}-{tag}"); work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    arms = {"random": {}} if "random" in args.arms else {}
    if "pretrained" in args.arms:
        pretraining, encoder_file = pretrained_encoder(common, work, reuse=not args.no_reuse, family=args.family)
        print(f"pretraining on seed-{PRETRAIN_DATA_SEED} data: val macro-F1 {pretraining['val']['macro_f1']:.4f}, "
              f"its own test macro-F1 {pretraining['scores']['macro_f1']:.4f}, {pretraining['train_seconds']} s; encoder {encoder_file.name}", flush=True)
        arms["pretrained"] = {"encoder_weights": str(encoder_file.resolve())} | FINE_TUNING
    root = synthetic_marida_dir(family=args.family)
    subsets = scene_subsets(root)
    datasets = {f: subset_dataset(root, scenes, work / "data" / f"scenes-{round(100 * f)}") for f, scenes in subsets.items()}
    runs = []
    for seed in args.seeds:
        for f, data in datasets.items():
            for init, extra in arms.items():
                r = unet_run(common | {"data_dir": str(data)} | extra, seed, work / "runs" / f"scenes-{round(100 * f)}" / init / f"seed-{seed}",
                             reuse=not args.no_reuse)
                runs.append({"seed": seed, "fraction": f, "init": init} | _figures(r) | {"run_dir": r["run_dir"], "scores": r["scores"], "val": r["val"]})
                print(f"seed {seed}, {round(100 * f)} % of scenes, {init}: test macro-F1 {runs[-1]['macro_f1']:.4f}, debris F1 "
                      f"{runs[-1]['debris_f1']:.4f} (val macro-F1 {runs[-1]['val_macro_f1']:.4f}, best epoch {runs[-1]['best_epoch']}, "
                      f"{runs[-1]['train_seconds']} s)", flush=True)
    if len(arms) < 2: return print(f"{len(runs)} runs of the {' and '.join(arms)} arm done; run again with both arms for the summary")
    rows, summary = [], {}
    for f, scenes in subsets.items():
        train_ids = read_split_ids(datasets[f], "train")
        pixels = class_pixels(root, train_ids)   # macro-F1 averages over every class, present in training or not
        entry = {"scenes": scenes, "train_patches": len(train_ids), "debris_pixels": pixels["Marine Debris"],
                 "train_classes": [name for name, n in pixels.items() if n > 0]}
        for init in arms:
            mine = [r for r in runs if r["fraction"] == f and r["init"] == init]
            entry[init] = {k: mean_std([r[k] for r in mine]) for k in ("macro_f1", "debris_f1", "miou", "val_macro_f1", "best_epoch")}
        paired = {k: [p[k] - r[k] for p in runs for r in runs if p["fraction"] == r["fraction"] == f and p["seed"] == r["seed"]
                      and p["init"] == "pretrained" and r["init"] == "random"] for k in ("macro_f1", "debris_f1", "val_macro_f1")}
        entry["pretrained_minus_random"] = {k: mean_std(v) for k, v in paired.items()}
        summary[str(f)] = entry
        rows.append({"train scenes": f"{round(100 * f)} % ({len(scenes)} scenes, {len(train_ids)} patches, {len(entry['train_classes'])} classes)",
                     "random: macro-F1": _cell(entry["random"]["macro_f1"]), "pretrained: macro-F1": _cell(entry["pretrained"]["macro_f1"]),
                     "Δ macro-F1": _cell(entry["pretrained_minus_random"]["macro_f1"]),
                     "random: debris F1": _cell(entry["random"]["debris_f1"]), "pretrained: debris F1": _cell(entry["pretrained"]["debris_f1"]),
                     "Δ debris F1": _cell(entry["pretrained_minus_random"]["debris_f1"]),
                     "best epoch (random / pretrained)": " / ".join(" ".join(str(v) for v in entry[i]["best_epoch"]["values"]) for i in arms)})
    table = markdown_table(rows)
    text = (f"{table}\n\nTest split of the seed-0 synthetic {args.family}-family dataset ({len(read_split_ids(root, 'test'))} patches); seeds {args.seeds}; "
            f"pretrained = encoder of a run on the seed-{PRETRAIN_DATA_SEED} dataset, fine-tuned with {FINE_TUNING}.\n{command_line()}")
    print(text)
    for r in runs: r["scores"].pop("confusion_matrix", None); r["val"].pop("confusion_matrix", None)
    pretraining["scores"].pop("confusion_matrix", None)
    result = {"machine": machine_info(device), "command": command_line(), "threads": threads, "quick": args.quick, "seeds": args.seeds,
              "config": dataclasses.asdict(TrainConfig(**common)), "fine_tuning": FINE_TUNING, "pretrain_data_seed": PRETRAIN_DATA_SEED,
              "subset_seed": SUBSET_SEED, "family": args.family, "data": str(root), "pretraining": pretraining, "summary": summary, "runs": runs,
              "wall_seconds": round(time.perf_counter() - t0, 1), "table": text}
    print(f"wrote {write_results('pretrain' + ('' if args.family == 'default' else f'_{args.family}') + ('_quick' if args.quick else ''), result)}")

if __name__ == "__main__":
    main()

"""Benchmark: what deployed maps cost and gain (issue 17).

Speed (`--part speed`): `predict_scene` on one synthetic scene (default 2048², 11 bands, float32, tiled GeoTIFF)
with one model, a 3-member ensemble, each with and without the confidence raster, and one model with a spatial
decision (smoothing and a minimum debris area). The variants run in turns, round after round, so the machine's
drift cancels: each ratio is the median over rounds of (variant time / single-model time in the same round).
The time inside the members' forward pass (network, temperature and averaging) is measured separately, so the
work around the network (reading, normalising, blending, arg-max, writing) can be compared across variants.
Goal: an ensemble of 3 costs at most 3.1 × one model.

Quality (`--part quality`): for today's default recipe (3 seeds, trained by bench/quality.py, on both synthetic
families), test macro-F1 and Marine Debris F1 of the arg-max against the decision 06_evaluate writes (debris
threshold tuned on val), against smoothing 3 + a tuned threshold, for each seed (mean ± std) and for the 3-seed
ensemble. Also the test expected calibration error before and after temperature scaling fitted on val. Needs
the runs of `python bench/quality.py --set precision=bf16 --tag bf16` (and `--family archive`).

    python bench/decision.py                         # both parts
    python bench/decision.py --part speed --size 1024 --rounds 2
"""
from __future__ import annotations
import statistics, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, pick_device, set_threads, machine_info, write_results, markdown_table, command_line, MODELS_DIR

import numpy as np
import torch


def _timed_forward(counter: dict):
    "Wrap infer's members_probabilities so that the seconds spent inside it add up in counter['s']."
    import marine_unet.infer as infer
    plain = infer.members_probabilities
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try: return plain(*args, **kwargs)
        finally: counter["s"] += time.perf_counter() - start
    infer.members_probabilities = timed


def speed(args, work: Path) -> dict:
    "Seconds of each predict_scene variant, round after round, with the time inside the forward pass."
    from scene_inference import make_model, make_scene
    from marine_unet.core import class_names
    from marine_unet.infer import predict_scene
    from marine_unet.metrics import make_decision
    members = [make_model(work/f"member-{s}", args.encoder, seed=s) for s in range(3)]
    scene = make_scene(work/f"scene-{args.size}.tif", args.size)
    scene.read_bytes()   # from the page cache from here on
    spatial = make_decision(class_names(11), debris_threshold=0.5, smoothing=3, min_area={"Marine Debris": 3})
    variants = {"one model": dict(model=members[0]), "3-member ensemble": dict(model=members),
                "one model + confidence": dict(model=members[0], confidence=True),
                "3-member ensemble + confidence": dict(model=members, confidence=True),
                "one model + spatial decision": dict(model=members[0], decision=spatial)}
    counter = {"s": 0.0}; _timed_forward(counter)
    times = {name: [] for name in variants}; inside = {name: [] for name in variants}
    for r in range(args.rounds + 1):                       # round 0 warms up and is not kept
        for name, v in variants.items():
            out = work/f"map-{r}-{name.replace(' ', '_')}.tif"
            counter["s"] = 0.0; start = time.perf_counter()
            predict_scene(v["model"], scene, out, tile=256, overlap=32, batch_size=8, progress=False, overwrite=True,
                          confidence=v.get("confidence", False), decision=v.get("decision"))
            seconds = time.perf_counter() - start
            if r: times[name].append(seconds); inside[name].append(counter["s"])
            print(f"round {r} {name}: {seconds:.2f} s ({counter['s']:.2f} s in the forward pass)", flush=True)
    rows = []
    for name in variants:
        ratios = [t / s for t, s in zip(times[name], times["one model"])]
        around = [t - i for t, i in zip(times[name], inside[name])]
        rows.append({"variant": name, "median_s": statistics.median(times[name]), "vs_one_model": statistics.median(ratios),
                     "ratio_range": f"{min(ratios):.3f}–{max(ratios):.3f}", "forward_s": statistics.median(inside[name]),
                     "around_network_s": statistics.median(around)})
    return {"size": args.size, "encoder": args.encoder, "rounds": args.rounds, "rows": rows, "times_s": times, "forward_s": inside}


def _scores(probabilities, targets, names, decision=None) -> dict:
    from marine_unet.metrics import evaluate_predictions
    s = evaluate_predictions(probabilities, targets, names, decision)
    return {"macro_f1": s["macro_f1"], "debris_f1": s["per_class"]["Marine Debris"]["f1"]}


def _evaluate(val: dict, test: dict, names) -> dict:
    "Arg-max, the 06 decision (tuned debris threshold) and smoothing 3 + tuned threshold, on val and test; calibration."
    from marine_unet.evaluate import tune_decision
    from marine_unet.metrics import make_decision, calibration, fit_temperature, temper
    out = {"argmax": {"val": _scores(val["probabilities"], val["targets"], names), "test": _scores(test["probabilities"], test["targets"], names)}}
    for label, base in [("debris threshold (06 default)", None), ("smoothing 3 + debris threshold", make_decision(names, smoothing=3))]:
        decision = tune_decision(val["probabilities"], val["targets"], names, base)["decision"]
        out[label] = {"val": _scores(val["probabilities"], val["targets"], names, decision),
                      "test": _scores(test["probabilities"], test["targets"], names, decision), "debris_threshold": decision.debris_threshold}
    fit = fit_temperature(val["probabilities"], val["targets"])
    out["calibration"] = {"temperature": fit["temperature"], "test_ece_before": calibration(test["probabilities"], test["targets"])["ece"],
                          "test_ece_after": calibration(temper(test["probabilities"], fit["temperature"]), test["targets"])["ece"]}
    return out


def quality(args) -> dict:
    "Per seed and for the 3-seed ensemble, on both families: the decision's effect and calibration."
    from marine_unet.evaluate import dataset_for_model, predict_dataset
    from marine_unet.forward import model_members
    device = pick_device(args.device)
    result = {}
    for family, tag in [("default", "bf16"), ("archive", "archive-bf16")]:
        runs = [MODELS_DIR/"quality"/tag/f"seed-{s}" for s in (0, 1, 2)]
        missing = [str(r) for r in runs if not (r/"best_model"/"config.json").is_file()]
        if missing: print(f"{family}: runs missing ({missing}); train them with bench/quality.py first", flush=True); continue
        import json
        data = json.loads((runs[0]/"params.json").read_text())["data_dir"]
        per_seed, val_sum, test_sum = [], None, None
        for run in runs:
            members = model_members(run, device)
            config = members[0][1]; names = config["class_names"]
            val = predict_dataset(members, dataset_for_model(config, data, "val"), 8, device)
            test = predict_dataset(members, dataset_for_model(config, data, "test"), 8, device)
            per_seed.append(_evaluate(val, test, names)); print(family, run.name, per_seed[-1], flush=True)
            val_sum = val if val_sum is None else {**val, "probabilities": val_sum["probabilities"] + val["probabilities"]}
            test_sum = test if test_sum is None else {**test, "probabilities": test_sum["probabilities"] + test["probabilities"]}
        ensemble = _evaluate({**val_sum, "probabilities": val_sum["probabilities"] / np.float32(3)},
                             {**test_sum, "probabilities": test_sum["probabilities"] / np.float32(3)}, names)
        print(family, "ensemble", ensemble, flush=True)
        result[family] = {"runs": [str(r) for r in runs], "per_seed": per_seed, "ensemble": ensemble}
    return result


def _quality_rows(result: dict) -> list[dict]:
    rows = []
    for family, r in result.items():
        for label in ("argmax", "debris threshold (06 default)", "smoothing 3 + debris threshold"):
            row = {"family": family, "decision": label}
            for split, score in [("val", "macro_f1"), ("test", "macro_f1"), ("test", "debris_f1")]:
                values = [s[label][split][score] for s in r["per_seed"]]
                row[f"{split} {score} (3 seeds)"] = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
            row["test macro_f1, ensemble"] = round(r["ensemble"][label]["test"]["macro_f1"], 3)
            row["test debris_f1, ensemble"] = round(r["ensemble"][label]["test"]["debris_f1"], 3)
            rows.append(row)
    return rows


def main():
    p = base_parser(__doc__)
    p.add_argument("--part", choices=("speed", "quality", "both"), default="both")
    p.add_argument("--size", type=int, default=2048, help="scene side, pixels")
    p.add_argument("--encoder", default="resnet34", help="encoder of the (random-weight) U-Nets timed")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of all variants (after one warm-up round)")
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args()
    threads = set_threads(args.threads)
    result = {"machine": machine_info(pick_device(args.device)), "command": command_line(), "threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp); work.mkdir(parents=True, exist_ok=True)
        if args.part in ("speed", "both"):
            result["speed"] = speed(args, work)
            print(markdown_table(result["speed"]["rows"]))
        if args.part in ("quality", "both"):
            result["quality"] = quality(args)
            result["quality_rows"] = _quality_rows(result["quality"])
            print(markdown_table(result["quality_rows"]))
            print(markdown_table([{"family": f, "model": m, **v} for f, r in result["quality"].items()
                                  for m, v in [*((f"seed {i}", s["calibration"]) for i, s in enumerate(r["per_seed"])), ("ensemble", r["ensemble"]["calibration"])]]))
    print(write_results(f"decision_{args.part}", result))


if __name__ == "__main__":
    main()

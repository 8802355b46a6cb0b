"""Patch inference benchmark: ms/patch, achieved GFLOP/s and accuracy change of each inference path of a trained
smp Unet-resnet34 (11 bands), all measured in one run beside the machine's own fp32 / bf16 matmul peak.

    python bench/patch_inference.py                  # full run (trains and caches the model first if needed)
    python bench/patch_inference.py --quick          # smoke run: tiny model training, 2 repeats
    python bench/patch_inference.py --paths eager channels_last bf16_cl onnx_fp32

Timing: random 256x256x11 batches (--batch, default 8), median of --repeats after warm-up.
Accuracy: the synthetic test split predicted with each path, scored MARIDA-style (pooled confusion over annotated pixels).
"""
from __future__ import annotations
import contextlib, statistics, sys, time, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import *   # noqa: F401,F403
import numpy as np
import torch

from marine_unet.core import class_names
from marine_unet.metrics import confusion_matrix, scores_from_confusion
from marine_unet.model import load_model
from marine_unet.train import TrainConfig, train
from marine_unet.evaluate import dataset_for_model
from marine_unet.infer import export_onnx, quantize_onnx
from marine_unet.forward import autocast

CPU_PATHS = ("eager", "channels_last", "bf16", "bf16_cl", "bf16_native_cl", "compile", "compile_bf16", "onnx_fp32", "onnx_int8")
GPU_PATHS = ("eager", "channels_last", "fp16_cl", "bf16_cl", "fp16_native_cl", "compile", "compile_fp16", "onnx_fp32")
PRECISION = {"eager": "fp32", "channels_last": "fp32", "bf16": "bf16", "bf16_cl": "bf16", "fp16_cl": "fp16", "bf16_native_cl": "bf16", "fp16_native_cl": "fp16", "compile": "fp32",
             "compile_bf16": "bf16", "compile_fp16": "fp16", "onnx_fp32": "fp32", "onnx_int8": "int8"}
DESCRIPTION = {"eager": "eager fp32 (NCHW)", "channels_last": "eager fp32, channels_last", "bf16": "bf16 autocast (NCHW)",
               "bf16_cl": "bf16 autocast, channels_last", "fp16_cl": "fp16 autocast, channels_last",
               "bf16_native_cl": "model and input cast to bf16 (no autocast), channels_last", "fp16_native_cl": "model and input cast to fp16 (no autocast), channels_last",
               "compile": "torch.compile fp32, channels_last", "compile_bf16": "torch.compile + bf16 autocast, channels_last",
               "compile_fp16": "torch.compile + fp16 autocast, channels_last",
               "onnx_fp32": "ONNX Runtime fp32", "onnx_int8": "ONNX Runtime int8 (dynamic quantisation)"}

# ------------------------------------------------------------------------------------------------ model
def trained_model(quick: bool=False, epochs: int=20, device: str="cpu") -> Path:
    "A Unet-resnet34 trained on the synthetic data, cached in bench/results/models/ (trained once, then reused)."
    run = MODELS_DIR / ("unet_resnet34_quick" if quick else f"unet_resnet34_e{epochs}")
    if (run / "best_model" / "model.safetensors").exists() and (run / "metrics.json").exists(): return run / "best_model"
    if run.exists():
        import shutil; shutil.rmtree(run)
    print(f"training the benchmark model into {run} ...", flush=True); t0 = time.perf_counter()
    train(TrainConfig(out_dir=str(run), encoder="resnet34", epochs=1 if quick else epochs, max_batches=2 if quick else 0,
                      progress=False, device=device))
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return run / "best_model"

# ------------------------------------------------------------------------------------------------ paths
def torch_path(model: torch.nn.Module, device: torch.device, channels_last: bool, dtype: torch.dtype|None, compile: bool, cast: torch.dtype|None=None):
    "A function (N, C, H, W) float32 tensor -> float32 logits for one torch path (`cast`: run the whole model in that dtype)."
    import copy
    m = copy.deepcopy(model).to(device).eval()
    if cast is not None: m = m.to(cast)
    if channels_last: m = m.to(memory_format=torch.channels_last)
    if compile: m = torch.compile(m)
    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, dtype=cast or torch.float32, non_blocking=True)
        if channels_last: x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device, dtype): return m(x).float()
    return run

def onnx_path(model_dir: Path, work: Path, int8: bool, threads: int, device: torch.device):
    "A function tensor -> logits through an ONNX Runtime session of the exported (and maybe int8-quantised) model."
    import onnxruntime as ort
    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "model.onnx"
    if not fp32.exists(): export_onnx(model_dir, fp32)
    path = fp32
    if int8:
        path = work / "model_int8.onnx"
        if not path.exists(): quantize_onnx(fp32, path)
    opts = ort.SessionOptions(); opts.intra_op_num_threads = threads; opts.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers() else ["CPUExecutionProvider"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore"); session = ort.InferenceSession(str(path), opts, providers=providers)
    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["logits"], {"image": x.detach().cpu().numpy()})[0])
    return run, session.get_providers()[0]

def build_paths(names, model, model_dir: Path, device: torch.device, threads: int, quick: bool) -> dict:
    "name -> (run function, note) for the requested paths; a path that cannot be built is reported, not fatal."
    half = torch.float16 if device.type == "cuda" else torch.bfloat16
    spec = {"eager": (False, None, False), "channels_last": (True, None, False), "bf16": (False, torch.bfloat16, False),
            "bf16_cl": (True, torch.bfloat16, False), "fp16_cl": (True, torch.float16, False),
            "bf16_native_cl": (True, None, False, torch.bfloat16), "fp16_native_cl": (True, None, False, torch.float16), "compile": (True, None, True),
            "compile_bf16": (True, torch.bfloat16, True), "compile_fp16": (True, torch.float16, True)}
    out = {}
    for name in names:
        try:
            if name in spec: out[name] = (torch_path(model, device, *spec[name]), "")
            elif name in ("onnx_fp32", "onnx_int8"):
                run, provider = onnx_path(model_dir, MODELS_DIR / ("onnx_quick" if quick else "onnx") / model_dir.parent.name, name == "onnx_int8", threads, device)
                out[name] = (run, provider)
            else: print(f"unknown path {name}: skipped")
        except Exception as e:  # noqa: BLE001 - report and go on with the other paths
            print(f"path {name}: could not be built ({type(e).__name__}: {e})"); out[name] = (None, f"{type(e).__name__}: {e}")
    return out

# ------------------------------------------------------------------------------------------------ accuracy
def test_split(config: dict) -> tuple[torch.Tensor, np.ndarray]:
    "All normalised images (N, C, H, W) and targets (N, H, W) of the synthetic test split."
    ds = dataset_for_model(config, "", "test", cache=True)
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items]).numpy()

def predict_classes(run, images: torch.Tensor, batch: int) -> np.ndarray:
    "Argmax classes of `images` through `run`, in batches of `batch` (the last batch padded so shapes never change)."
    out = []
    for s in range(0, len(images), batch):
        x = images[s:s + batch]; n = len(x)
        if n < batch: x = torch.cat([x, x[:1].expand(batch - n, *x.shape[1:])])
        out.append(run(x)[:n].argmax(1).cpu().numpy())
    return np.concatenate(out)

# ------------------------------------------------------------------------------------------------ main
def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="patches per forward pass")
    p.add_argument("--size", type=int, default=256, help="patch side for the timing")
    p.add_argument("--paths", nargs="+", default=None, help="paths to run (default: all for the device)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of the cached benchmark model")
    p.add_argument("--peak-n", type=int, default=2048, help="side of the square matmuls of the peak measurement")
    args = p.parse_args()
    threads = set_threads(args.threads); device = pick_device(args.device)
    repeats = 2 if args.quick else args.repeats
    names = args.paths or (GPU_PATHS if device.type == "cuda" else CPU_PATHS)
    info = machine_info(device); print(f"machine: {info['cpu']} | {info['logical_cores']} cores | torch {info['torch']} threads {threads} | ORT {info['onnxruntime']} | device {device}")
    model_dir = trained_model(args.quick, args.epochs, device.type)
    model, config = load_model(model_dir)
    names_k = config["class_names"]

    peaks = {"fp32": peak(torch.float32, args.peak_n, repeats, device)}
    peaks["bf16"] = peak(torch.bfloat16, args.peak_n, repeats, device)
    if device.type == "cuda": peaks["fp16"] = peak(torch.float16, args.peak_n, repeats, device)
    print("peak GFLOP/s (median; torch.mm / 3x3 conv): " + ", ".join(f"{k} {v['matmul']['gflops']:.1f} / {v['conv3x3']['gflops']:.1f}" for k, v in peaks.items()), flush=True)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, len(config["bands"]), args.size, args.size, generator=g)
    flops = forward_flops(model.eval(), x[:1])
    images, targets = test_split(config)
    paths = build_paths(names, model, model_dir, device, threads, args.quick)

    rows, results, live = [], {}, {}
    for name, (run, note) in paths.items():   # first call (compilation for torch.compile), warm-up and accuracy, path by path
        if run is None: results[name] = {"error": note}; continue
        t0 = time.perf_counter()
        try:
            run(x); sync(device); first_s = time.perf_counter() - t0
            for _ in range(1 if args.quick else 2): run(x)
            pred = predict_classes(run, images, args.batch)
        except Exception as e:  # noqa: BLE001
            print(f"path {name}: failed ({type(e).__name__}: {e})"); results[name] = {"error": f"{type(e).__name__}: {e}"}; continue
        scores = scores_from_confusion(confusion_matrix(targets, pred, len(names_k)), names_k)
        results[name] = {"description": DESCRIPTION[name], "precision": PRECISION[name], "provider": note, "first_call_s": first_s,
                         "miou": scores["miou"], "macro_f1": scores["macro_f1"], "times_s": []}
        live[name] = run
        print(f"{name:14s} ready (first call {first_s:.1f} s), mIoU {scores['miou']:.4f}", flush=True)
    for _ in range(repeats):   # interleaved: one timed call of every path per round, so machine noise hits all paths alike
        for name, run in live.items():
            t = time_fn(lambda: run(x), repeats=1, warmup=0, device=device); results[name]["times_s"].append(t["median_s"])
    peaks_after = {k: peak(getattr(torch, {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[k]), args.peak_n, repeats, device) for k in list(peaks)}
    for k, v in peaks_after.items():   # the peak is the best seen before or after the paths (the machine's limit, not its noise)
        peaks[k]["gflops_after"] = v["gflops"]; peaks[k]["after"] = v
        if v["best_gflops"] > peaks[k]["best_gflops"]: peaks[k]["best_gflops"], peaks[k]["source"] = v["best_gflops"], v["source"]
    peaks["int8"] = peaks["fp32"]
    for name in live:
        r = results[name]; per_patch = statistics.median(r["times_s"]) / args.batch
        r |= {"ms_per_patch": per_patch * 1e3, "gflops": flops["flops_per_sample"] / per_patch / 1e9, "threads": threads}
        r["fraction_of_peak"] = r["gflops"] / peaks[r["precision"]]["best_gflops"]
        print(f"{name:14s} {per_patch * 1e3:8.2f} ms/patch  {r['gflops']:7.1f} GFLOP/s", flush=True)
    base = results.get("eager", {})
    for name, r in results.items():
        if "error" in r: rows.append({"path": name, "note": r["error"][:60]}); continue
        r["speedup"] = base["ms_per_patch"] / r["ms_per_patch"] if "ms_per_patch" in base else None
        r["delta_miou"] = r["miou"] - base["miou"] if "miou" in base else None
        r["delta_macro_f1"] = r["macro_f1"] - base["macro_f1"] if "macro_f1" in base else None
        rows.append({"path": name, "ms/patch": r["ms_per_patch"], "GFLOP/s": r["gflops"],
                     "% of peak": f"{100 * r['fraction_of_peak']:.0f}% of {r['precision'] if r['precision'] != 'int8' else 'fp32'}",
                     "speed-up": r["speedup"], "mIoU": r["miou"], "ΔmIoU": r["delta_miou"], "macro-F1": r["macro_f1"],
                     "note": r["description"] + (f" [{r['provider']}]" if r["provider"] else "")})
    ok = [n for n, r in results.items() if "error" not in r and r.get("delta_miou") is not None and r["delta_miou"] >= -0.01]
    best = max(ok, key=lambda n: results[n]["speedup"]) if ok else None
    verdict = (f"fastest path with mIoU drop <= 0.01: {best} at {results[best]['speedup']:.2f}x eager fp32; target >= 1.8x: "
               f"{'MET' if results[best]['speedup'] >= 1.8 else 'NOT met'}") if best else "no path to judge"
    for row in rows:
        if row["path"] == best: row["path"] = f"**{best}**"
    table = markdown_table(rows, ["path", "ms/patch", "GFLOP/s", "% of peak", "speed-up", "mIoU", "ΔmIoU", "macro-F1", "note"])
    peak_line = ("peak = best of torch.mm %d² and a 3×3 conv (oneDNN/cuDNN), %d repeats before + %d after the paths; %% of peak uses it; int8 is compared with fp32: " % (args.peak_n, repeats, repeats)) + ", ".join(f"{k} {v['best_gflops']:.1f} GFLOP/s ({v['source']}; torch.mm median {v['matmul']['gflops']:.1f}, 3×3 conv median {v['conv3x3']['gflops']:.1f})" for k, v in peaks.items() if k != "int8")
    flop_line = f"forward pass: {flops['flops_per_sample'] / 1e9:.2f} GFLOP per {args.size}x{args.size} patch ({flops['counter']})"
    header = (f"{info['cpu']}, {info['logical_cores']} cores, torch {info['torch']} ({threads} threads), ORT {info['onnxruntime']}, "
              f"device {device}{' ' + info.get('gpu', '') if device.type == 'cuda' else ''}; batch {args.batch}, median of {repeats} interleaved rounds; "
              f"accuracy on the synthetic test split ({len(images)} patches)")
    text = f"{header}\n{peak_line}\n{flop_line}\n\n{table}\n\n{verdict}\n{command_line()}"
    print(text)
    out = {"machine": info, "command": command_line(), "model_dir": str(model_dir), "batch": args.batch, "size": args.size,
           "repeats": repeats, "peaks": peaks, "flops": flops, "paths": results, "fastest_within_0.01_miou": best, "verdict": verdict, "table": text}
    print(f"wrote {write_results('patch_inference_quick' if args.quick else f'patch_inference_{device.type}', out)}")

if __name__ == "__main__":
    main()

"""Benchmark 2: full-scene inference with `marine_unet.infer.predict_scene`, against the batch throughput of the
same model on the same machine in the same run.

For each scene size (default 2048² and 8192², 11 bands, float32 reflectance on a UTM grid, tiled GeoTIFF) a fresh
Python process measures, in turns, the batch throughput (the same model, precision and tile size: batches of
`--batch` random tiles through the same forward function `predict_scene` uses, `--repeats` timings after warm-up) and
`predict_scene` on the scene (5 runs for small scenes, 2 for large). Each scene run is compared with the batches
timed just before and after it, so that the machine's drift over minutes cancels out; the ratio reported is the
median of these paired ratios (their range is shown too). Because the machine's speed can change within a run, it
also reports the network's share of each scene run: the time inside the forward function (the same one the batches
time) over the run's time, which both see the same machine. If the network runs in a scene as fast as in plain
batches, the share is the ratio's value without the noise. And it reports the process's peak resident memory
(VmHWM). Sizes do not share memory. Before the runs the scene file is read through once, so that it comes from the
OS page cache as far as the machine's memory allows: the runs time marine_unet's work, not the disk (a scene read
from disk adds the disk's time; `scene_first_read_s` in the JSON is that first read).

    python bench/scene_inference.py                       # 2048² and 8192², fp32 and bf16
    python bench/scene_inference.py --sizes 10980 --device cuda --precisions bf16 fp16
"""
from __future__ import annotations
import json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, pick_device, set_threads, time_fn, machine_info, write_results, markdown_table, command_line

import numpy as np
import torch


def make_model(folder: Path, encoder: str, seed: int=0) -> Path:
    "An 11-band, 11-class smp U-Net (random weights: speed and memory do not depend on them) saved as a model folder."
    from marine_unet.core import BAND_NAMES, BANDS_MEAN, BANDS_STD, class_names
    from marine_unet.model import build_model, save_model
    torch.manual_seed(seed)
    model = build_model("unet", encoder, in_channels=11, classes=11)
    save_model(model, folder, bands=list(BAND_NAMES), mean=list(BANDS_MEAN), std=list(BANDS_STD), protocol=11,
               class_names=class_names(11), overwrite=True)
    return folder


def make_scene(path: Path, size: int, seed: int=0, rows: int=512) -> Path:
    "A size × size, 11-band float32 scene on a 10 m UTM grid, tiled 256² (no compression), written strip by strip."
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    if path.exists(): return path
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.5, 1.5, (11, 1, 1)).astype(np.float32)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": 11, "dtype": "float32", "crs": CRS.from_epsg(32616),
               "transform": from_origin(600_000.0, 1_800_000.0, 10.0, 10.0), "tiled": True, "blockxsize": 256,
               "blockysize": 256, "BIGTIFF": "IF_SAFER"}
    tmp = path.with_name(path.name + ".tmp")
    with rasterio.open(tmp, "w", **profile) as dst:
        xx = np.arange(size, dtype=np.float32)[None, :] / 40
        for y in range(0, size, rows):
            h = min(rows, size - y)
            yy = np.arange(y, y + h, dtype=np.float32)[:, None] / 40
            base = 0.04 + 0.03 * np.sin(yy) * np.cos(xx)
            block = base[None] * gains + rng.normal(0, 0.003, (11, h, size)).astype(np.float32)
            dst.write(block.astype(np.float32), window=Window(0, y, size, h))
    os.replace(tmp, path)
    return path


def batch_throughput(pair: tuple, tile: int, batch: int, precision: str, device: torch.device, repeats: int) -> dict:
    "Tiles/s of `batch` random normalised tiles through predict_scene's own forward function (median of repeats)."
    from marine_unet.forward import predict_array, autocast_dtype
    from marine_unet.model import input_multiple
    model = pair[0]
    x = np.random.default_rng(0).standard_normal((batch, 11, tile, tile)).astype(np.float32)
    dtype = autocast_dtype(precision, device)
    t = time_fn(lambda: predict_array(model, x, batch, False, device, input_multiple(model), dtype), repeats=repeats, warmup=2, device=device)
    return {**t, "tiles_per_s": batch / t["median_s"], "batch": batch}


def peak_rss_mb() -> float:
    "This process's peak resident memory, MB: VmHWM (ru_maxrss would include the parent's peak, kept across exec on Linux)."
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"): return int(line.split()[1]) / 1024
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_through(path: Path, chunk: int=64 << 20) -> float:
    "Read the file once, so that the scene runs find it in the OS page cache as the batches find their tiles in memory; seconds taken."
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(chunk): pass
    return time.perf_counter() - start


def child(args) -> None:
    "Time batches and predict_scene in turns in this process; print a JSON line with medians, tiles and memory."
    from marine_unet.infer import predict_scene, tile_origins, as_model
    import marine_unet.forward as infer                        # members_probabilities looks predict_array up there (not in infer)
    import rasterio, statistics
    forward, in_network = infer.predict_array, []
    def timed_forward(*args, **kwargs):                        # predict_scene looks the function up at each batch
        start = time.perf_counter(); out = forward(*args, **kwargs); in_network[-1] += time.perf_counter() - start
        return out
    device = pick_device(args.device); set_threads(args.threads)
    pair = as_model(args.model, device)
    rss_model = peak_rss_mb()
    with rasterio.open(args.scene) as src: height, width = src.shape
    tiles = len(tile_origins(height, args.tile, args.overlap)) * len(tile_origins(width, args.tile, args.overlap))
    rounds = args.scene_repeats or (5 if tiles < 400 else 2)
    first_read_s = read_through(Path(args.scene))
    groups, scene_times = [], []                               # batch timings before, between and after the scene runs
    for r in range(rounds + 1):
        groups.append(batch_throughput(pair, args.tile, args.batch, args.precision, device, args.repeats)["times_s"])
        if r == rounds: break
        in_network.append(0.0); infer.predict_array = timed_forward
        start = time.perf_counter()
        predict_scene(pair, args.scene, args.out, tile=args.tile, overlap=args.overlap, batch_size=args.batch,
                      precision=args.precision, device=device, overwrite=True, progress=False)
        scene_times.append(time.perf_counter() - start); infer.predict_array = forward
    # each scene run against the batches timed just before and after it: the machine's drift cancels out
    paired = [(tiles / t) / (args.batch / statistics.median(groups[i] + groups[i + 1])) for i, t in enumerate(scene_times)]
    batch_times = sum(groups, [])
    seconds, batch_s = statistics.median(scene_times), statistics.median(batch_times)
    print(json.dumps({"seconds": seconds, "scene_times_s": scene_times, "tiles": tiles, "tiles_per_s": tiles / seconds,
                      "scene_vs_batch": statistics.median(paired), "scene_vs_batch_runs": paired,
                      "network_share": statistics.median(n / t for n, t in zip(in_network, scene_times)),
                      "network_share_runs": [n / t for n, t in zip(in_network, scene_times)],
                      "batch_timing": {"median_s": batch_s, "times_s": batch_times, "batch": args.batch, "tiles_per_s": args.batch / batch_s},
                      "peak_rss_mb": peak_rss_mb(), "rss_after_model_load_mb": rss_model, "scene_first_read_s": first_read_s}))


def run_child(args, scene: Path, model_dir: Path, precision: str, out: Path) -> dict:
    "predict_scene in a fresh process; its JSON report."
    cmd = [sys.executable, __file__, "--child", "--model", str(model_dir), "--scene", str(scene), "--out", str(out),
           "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch", str(args.batch), "--precision", precision,
           "--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats), "--scene-repeats", str(args.scene_repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0: raise SystemExit(f"predict_scene child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192], help="scene sides, pixels")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="fp32, bf16 (autocast), fp16 (CUDA autocast)")
    p.add_argument("--encoder", default="resnet34")
    p.add_argument("--tile", type=int, default=256); p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--scene-repeats", type=int, default=0, help="predict_scene runs per scene, the median reported (0: 5 for small scenes, 2 for large)")
    p.add_argument("--work", default="", help="folder for the scenes and outputs (default: a temporary folder; scenes are large)")
    p.add_argument("--child", action="store_true", help=argparse_hidden()); p.add_argument("--model", default="")
    p.add_argument("--scene", default=""); p.add_argument("--out", default=""); p.add_argument("--precision", default="fp32")
    args = p.parse_args()
    if args.child: return child(args)
    if args.quick: args.sizes, args.repeats = [512, 1024], 2
    device = pick_device(args.device); threads = set_threads(args.threads)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="marine_unet_scene_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = make_model(work/f"unet_{args.encoder}", args.encoder)
    rows, results = [], {"command": command_line(), "machine": machine_info(device), "tile": args.tile, "overlap": args.overlap,
                         "batch": args.batch, "encoder": args.encoder, "runs": []}
    for precision in args.precisions:
        for size in args.sizes:
            scene = make_scene(work/f"scene_{size}.tif", size)
            run = run_child(args, scene, model_dir, precision, work/f"map_{size}_{precision}.tif")
            batch = run["batch_timing"]
            run.update(size=size, precision=precision, batch_tiles_per_s=batch["tiles_per_s"])
            results["runs"].append(run)
            rows.append({"scene": f"{size}²", "precision": precision, "tiles": run["tiles"], "seconds": run["seconds"],
                         "scene tiles/s": run["tiles_per_s"], "batch tiles/s": batch["tiles_per_s"],
                         "scene / batch": run["scene_vs_batch"],
                         "range": f"{min(run['scene_vs_batch_runs']):.2f}–{max(run['scene_vs_batch_runs']):.2f}",
                         "network share": run["network_share"],
                         "peak RSS MB": run["peak_rss_mb"],
                         "RSS after model load MB": run["rss_after_model_load_mb"]})
    for precision in args.precisions:
        runs = {r["size"]: r for r in results["runs"] if r["precision"] == precision}
        if len(runs) >= 2:
            small, large = runs[min(runs)], runs[max(runs)]
            results.setdefault("memory_ratio", {})[precision] = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"device {device}, {threads} threads, U-Net/{args.encoder}, tile {args.tile}, overlap {args.overlap}, batch {args.batch}")
    print(markdown_table(rows, digits=2))
    for precision, ratio in results.get("memory_ratio", {}).items():
        print(f"{precision}: peak RSS of the largest scene / smallest = {ratio:.2f}")
    print("wrote", write_results("scene_inference" + ("_quick" if args.quick else ""), results))


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

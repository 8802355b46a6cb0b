"""The work `predict_scene` does around the network (reading, batching, blending, arg-max, saving, writing), alone.

The network is replaced by a stand-in that hands back fixed softmax probabilities of the right shape, so what is left
is exactly the scene path's own cost. Prints the median time over `--repeats` runs (less the stand-in's own
copying), the cost per tile, with `--stages` the time of each stage of it, and with
`--profile` the functions that take the most of it (cProfile, one more run). Uses the scenes and model that
`scene_inference.py --work DIR` made there (it makes them if missing).

    python bench/scene_overhead.py --work /tmp/scenebench --sizes 2048 8192 --profile
"""
from __future__ import annotations
import cProfile, io, pstats, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, set_threads
from scene_inference import make_model, make_scene

import torch


def stand_in(classes: int, spent: list[float]):
    "A replacement for infer.predict_array: fixed softmax probabilities, a fresh copy each call; its time goes to `spent`."
    made = {}
    def probabilities(model, x, *args, **kwargs):
        start = time.perf_counter()
        shape = (len(x), classes) + tuple(x.shape[-2:])
        if shape not in made: made[shape] = torch.rand(shape, generator=torch.Generator().manual_seed(0)).softmax(1).numpy()
        out = made[shape].copy()                      # fresh, since older versions of predict_scene wrote into it
        spent[-1] += time.perf_counter() - start
        return out
    return probabilities


STAGES = {"_read": "reading windows", "_invalid_pixels": "finding no-data pixels", "_normalise_inplace": "normalising",
          "_stack_tiles": "batching tiles", "_finish_strip": "arg-max (and probabilities)", "_save_strip": "saving strips",
          "_assemble": "writing the map", "_resume_key": "resume key (weights digest)"}


def time_stages(infer, spent: dict) -> dict:
    "Wrap the scene path's own functions in `infer` so that their time adds up in `spent`; the originals, to put back."
    originals = {name: getattr(infer, name) for name in STAGES if hasattr(infer, name)}  # an older checkout may lack one
    for name, function in originals.items():
        def timed(*args, _f=function, _name=name, **kwargs):
            start = time.perf_counter()
            try: return _f(*args, **kwargs)
            finally: spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - start
        setattr(infer, name, timed)
    return originals


def copy_as(scene: Path, layout: str) -> Path:
    "A copy of `scene` deflate-compressed (floating-point predictor, as Sentinel-2 stacks are often written) or band-interleaved."
    import rasterio
    from rasterio.windows import Window
    path = scene.with_name(f"{scene.stem}_{layout}.tif")
    if path.exists(): return path
    with rasterio.open(scene) as src:
        profile = {**src.profile, **({"compress": "deflate", "predictor": 3} if layout == "deflate" else {"interleave": "band"})}
        with rasterio.open(path.with_name(path.name + ".tmp"), "w", **profile) as dst:
            for y in range(0, src.height, 512):
                window = Window(0, y, src.width, min(512, src.height - y)); dst.write(src.read(window=window), window=window)
    path.with_name(path.name + ".tmp").rename(path)
    return path


def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192], help="scene sides, pixels")
    p.add_argument("--work", default="/tmp/scenebench", help="folder of scene_inference.py's scenes and model")
    p.add_argument("--profile", action="store_true", help="also print the 15 functions with the most time of their own")
    p.add_argument("--deflate", action="store_true", help="read a deflate-compressed copy of each scene instead")
    p.add_argument("--band", action="store_true", help="read a band-interleaved copy of each scene instead")
    p.add_argument("--stages", action="store_true", help="also print the time of each stage (one more run)")
    args = p.parse_args()
    import marine_unet.infer as infer
    from marine_unet.infer import as_model, predict_scene, tile_origins
    threads, work = set_threads(args.threads), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work/"unet_resnet34"
    if not (model_dir/"config.json").exists(): make_model(model_dir, "resnet34")
    pair = as_model(model_dir, "cpu")
    spent = [0.0]
    import marine_unet.forward as forward
    infer.predict_array = forward.predict_array = stand_in(len(pair[1]["class_names"]), spent)   # members_probabilities looks it up in forward
    print(f"{threads} threads, tile 256, overlap 32, batch 8, network replaced by a stand-in")
    for size in args.sizes:
        scene = make_scene(work/f"scene_{size}.tif", size)
        if args.deflate or args.band: scene = copy_as(scene, "deflate" if args.deflate else "band")
        run = lambda: predict_scene(pair, scene, work/f"overhead_{size}.tif", overwrite=True, progress=False)
        run()
        times = []
        for _ in range(args.repeats):
            spent.append(0.0); start = time.perf_counter(); run()
            times.append(time.perf_counter() - start - spent[-1])   # without the stand-in's own copying
        tiles = len(tile_origins(size, 256, 32)) ** 2
        median = statistics.median(times)
        print(f"{scene.name}: {median:.3f} s a scene besides the network (runs {', '.join(f'{t:.3f}' for t in times)}), "
              f"{1000 * median / tiles:.2f} ms a tile")
        if args.stages:
            stages = {}; originals = time_stages(infer, stages)
            spent.append(0.0); start = time.perf_counter(); run(); total = time.perf_counter() - start - spent[-1]
            for name, function in originals.items(): setattr(infer, name, function)
            for name, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
                print(f"  {STAGES[name]:<30} {1000 * seconds / tiles:.2f} ms a tile")
            print(f"  {'the rest (blending, bookkeeping)':<30} {1000 * (total - sum(stages.values())) / tiles:.2f} ms a tile")
        if args.profile:
            profile = cProfile.Profile(); profile.enable(); run(); profile.disable()
            text = io.StringIO(); pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(15)
            print(text.getvalue())


if __name__ == "__main__":
    main()

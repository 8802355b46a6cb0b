"""Does `predict_scene(compile=True)` pay? (issue 20) Seconds of `predict_scene` on one synthetic 11-band scene
(bench/scene_inference.py's scenes: float32, tiled, uncompressed) with a random-weight U-Net ResNet-34, eager against
`torch.compile`, per precision, each in a fresh process (so every compiled run pays its compile, as a user's does):

- eager: the median of `--repeats` calls after one warm-up call;
- compiled, first call: what a user's one call costs, compiling included;
- compiled, later calls: the median of `--repeats` further calls in the same process (the graphs compiled).

From these it reports the compile overhead (first call − later calls), the speed-up once compiled, and the number of
tiles from which the compiled first call beats eager (overhead / (eager − compiled seconds a tile)).

    python bench/compile_scene.py --work /tmp/compilebench               # 2048², fp32 and bf16
    python bench/compile_scene.py --size 1024 --precisions bf16 --repeats 2
"""
from __future__ import annotations
import json, statistics, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, set_threads, machine_info, write_results, markdown_table, command_line
from scene_inference import make_model, make_scene


def child(args) -> None:
    "One process: predict_scene eager or compiled, timed per call, printed as JSON."
    from marine_unet.infer import predict_scene
    set_threads(args.threads)
    out, times = Path(args.out), []
    for i in range(args.repeats + 1):
        t0 = time.perf_counter()
        predict_scene(args.model, args.scene, out, tile=args.tile, overlap=args.overlap, batch_size=args.batch,
                      precision=args.precision, compile=args.compiled, overwrite=True, progress=False)
        times.append(time.perf_counter() - t0)
        print(f"  {'compiled' if args.compiled else 'eager'} {args.precision} call {i}: {times[-1]:.1f} s", file=sys.stderr, flush=True)
    print(json.dumps({"times_s": times}))


def run_child(args, compiled: bool, precision: str, model: Path, scene: Path, out: Path) -> list[float]:
    cmd = [sys.executable, __file__, "--child", "--model", str(model), "--scene", str(scene), "--out", str(out),
           "--precision", precision, "--repeats", str(args.repeats), "--threads", str(args.threads),
           "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch", str(args.batch)] + (["--compiled"] if compiled else [])
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["times_s"]


def main():
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048, help="scene side, pixels")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--tile", type=int, default=256); p.add_argument("--overlap", type=int, default=32); p.add_argument("--batch", type=int, default=8)
    p.add_argument("--work", default="/tmp/marine_unet_compilebench")
    p.add_argument("--child", action="store_true"); p.add_argument("--compiled", action="store_true")
    p.add_argument("--model", default=""); p.add_argument("--scene", default=""); p.add_argument("--out", default=""); p.add_argument("--precision", default="fp32")
    p.set_defaults(repeats=3)
    args = p.parse_args()
    if args.quick and not args.child: args.repeats = 1
    if args.child: return child(args)
    if args.quick: args.size, args.precisions = 512, args.precisions[:1]
    work = Path(args.work); work.mkdir(parents=True, exist_ok=True)
    model = make_model(work/"model", "resnet34")
    scene = make_scene(work/f"scene_{args.size}.tif", args.size)
    from marine_unet.infer import tile_origins
    tiles = len(tile_origins(args.size, args.tile, args.overlap)) ** 2
    rows, runs = [], {}
    for precision in args.precisions:
        eager = run_child(args, False, precision, model, scene, work/f"eager_{precision}.tif")
        compiled = run_child(args, True, precision, model, scene, work/f"compiled_{precision}.tif")
        runs[precision] = {"eager_s": eager, "compiled_s": compiled}
        eager_s, first, later = statistics.median(eager[1:]), compiled[0], statistics.median(compiled[1:])
        overhead, gain_per_tile = first - later, (eager_s - later) / tiles
        rows.append({"precision": precision, "tiles": tiles, "eager s": eager_s, "compiled, first call s": first,
                     "compiled, later calls s": later, "speed-up once compiled": eager_s / later, "compile overhead s": overhead,
                     "first call × eager": first / eager_s,
                     "break-even tiles": overhead / gain_per_tile if gain_per_tile > 0 else float("inf")})
        print(markdown_table(rows[-1:]), flush=True)
    info = machine_info("cpu")
    text = (f"{info['cpu']}, {info['logical_cores']} cores, torch {info['torch']} ({set_threads(args.threads)} threads); "
            f"predict_scene on a {args.size}² 11-band scene, U-Net ResNet-34 (random weights), tiles {args.tile} overlap "
            f"{args.overlap}, batch {args.batch}; medians of {args.repeats} calls\n\n{markdown_table(rows)}\n{command_line()}")
    print(text)
    write_results("compile_scene_quick" if args.quick else "compile_scene",
                  {"machine": info, "command": command_line(), "size": args.size, "tiles": tiles, "runs": runs, "rows": rows, "table": text})


if __name__ == "__main__":
    main()

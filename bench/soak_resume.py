"""Soak test (not CI): kill a tiny training with SIGKILL at many seeded random points, resume it, and check that every
resumed run ends byte for byte like an uninterrupted one (metrics.json, best_model/, last_model/) with nothing
half-written left in its folder.

    python bench/soak_resume.py                          # 20 kill points, 6 epochs
    python bench/soak_resume.py --repeats 100 --epochs 8 --seed 1 --max-delay 0.5
    python bench/soak_resume.py --repeats 3 --epochs 4   # smoke run

Prints a markdown table (one row per kill point; a kill point is replayable from its kill seed with
`marine_unet.testing.kill_and_resume`), writes bench/results/soak_resume.json, and exits with status 1 on any
mismatch or leftover file. Every child runs with --threads threads (bit-for-bit equality needs the same count).
"""
from __future__ import annotations
import argparse, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--repeats", type=int, default=20, help="kill points to try")
    p.add_argument("--epochs", type=int, default=6, help="epochs of every run (>= 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill points (kill seed = seed * 100000 + repeat)")
    p.add_argument("--train-seed", type=int, default=0, help="seed of the training runs")
    p.add_argument("--max-delay", type=float, default=0.4, help="longest delay after the chosen epoch's checkpoint, seconds")
    p.add_argument("--scenes", type=int, default=3, help="scenes of the synthetic dataset")
    p.add_argument("--patches", type=int, default=2, help="patches per scene")
    p.add_argument("--size", type=int, default=64, help="patch side, pixels")
    p.add_argument("--threads", type=int, default=1, help="torch threads in every child (OMP_NUM_THREADS)")
    p.add_argument("--work", default="", help="working folder (default: a temporary folder, deleted unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the working folder")
    p.add_argument("--results", default=str(Path(__file__).resolve().parent/"results"/"soak_resume.json"), help="JSON results file")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.epochs < 2 or args.max_delay < 0 or args.threads < 1:
        p.error("need --repeats >= 1, --epochs >= 2, --max-delay >= 0, --threads >= 1")
    return args

def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)   # inherited by every child through child_env
    from marine_unet.core import write_json
    from marine_unet.synthetic import make_synthetic_marida
    from marine_unet.testing import child_env, cli_command, kill_and_resume, train_args
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="marine_unet_soak_"))
    work.mkdir(parents=True, exist_ok=True)
    t0, rows = time.perf_counter(), []
    try:
        data = make_synthetic_marida(work/"data", scenes=args.scenes, patches_per_scene=args.patches, size=args.size, seed=0, overwrite=True)
        reference = work/"reference"
        shutil.rmtree(reference, ignore_errors=True)
        ref = subprocess.run(cli_command(*train_args(data, reference, args.epochs, args.train_seed)), env=child_env(),
                             capture_output=True, text=True)
        if ref.returncode: print(ref.stderr[-3000:], file=sys.stderr); return 1
        print("| # | kill seed | after epoch | delay s | killed | checkpoint at kill | left by the kill | differences | leftovers after resume | ok |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for i in range(args.repeats):
            out = work/f"killed-{i}"
            shutil.rmtree(out, ignore_errors=True)
            try: r = kill_and_resume(data, out, reference, args.epochs, args.seed * 100000 + i, args.max_delay, args.train_seed)
            except RuntimeError as e: r = {"kill_seed": args.seed * 100000 + i, "error": str(e), "differences": [str(e)], "leftovers": []}
            r["ok"] = not r["differences"] and not r["leftovers"]
            rows.append(r)
            print(f"| {i} | {r['kill_seed']} | {r.get('after_epoch', '')} | {r.get('delay', '')} | {r.get('killed', '')} | "
                  f"{r.get('checkpoint_at_kill', '')} | {', '.join(r.get('left_by_kill', [])) or '-'} | {'; '.join(r['differences']) or '-'} | {', '.join(r['leftovers']) or '-'} | "
                  f"{'yes' if r['ok'] else '**NO**'} |", flush=True)
            if r["ok"] and not args.keep: shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep and not args.work: shutil.rmtree(work, ignore_errors=True)
    bad, killed = sum(not r["ok"] for r in rows), sum(bool(r.get("killed")) for r in rows)
    torn = sum(bool(r.get("left_by_kill")) for r in rows)
    seconds = round(time.perf_counter() - t0, 1)
    print(f"\n{len(rows)} kill points, {killed} killed mid-run (the rest finished first), {torn} killed mid-write "
          f"(temporary files left, cleaned on resume), {bad} mismatching; {seconds} s")
    write_json(args.results, {"args": vars(args), "rows": rows, "mismatches": bad, "killed": killed, "killed_mid_write": torn, "seconds": seconds})
    return 1 if bad else 0

if __name__ == "__main__":
    sys.exit(main())

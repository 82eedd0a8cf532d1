"""Run one tomoseg command in a fresh process with its objects labelled in memory or chunk by chunk, and return
its time and its own peak memory (``tomoseg.cpu_memory.peak_rss``)."""

import json
import subprocess
import sys

CHILD = r"""
import dataclasses, importlib, json, sys, time
from tomoseg.cli import main
from tomoseg.cpu_memory import peak_rss
module = importlib.import_module(sys.argv[1])
plain = module._options
module._options = lambda args: dataclasses.replace(plain(args), in_memory_voxels=int(sys.argv[2]))
t0 = time.perf_counter()
code = main(["-q", *sys.argv[3:]])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0, "peak_rss_mib": peak_rss() / 2**20}))
"""


def run_child(code: str, args, env=None) -> dict:
    """``python -c CODE ARGS`` in a fresh process; returns the JSON object on the last line it prints (its
    measurements). A child that fails stops the benchmark with the end of its stderr."""
    res = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_cli(options_module: str, in_memory_voxels: int, argv: list) -> dict:
    """``tomoseg ARGV`` in a child process, ``options_module._options`` (the command's option builder) set to
    label in memory up to ``in_memory_voxels``; returns ``{code, seconds, peak_rss_mib}``."""
    return run_child(CHILD, [options_module, in_memory_voxels, *argv])


MODES = (("in memory", 2**40), ("chunk by chunk", 0))  # (name, in_memory_voxels)


def memory_arguments(description: str, out: str, argv=None, extra=None):
    """The memory benchmarks' command line: --size (slices' edge), --depths, --out, and whatever ``extra(parser)``
    adds."""
    import argparse

    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--depths", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--out", default=out)
    if extra is not None:
        extra(ap)
    return ap.parse_args(argv)


def runs_by_depth(depths, size: int, prepare, run):
    """For each depth: a fresh folder filled by ``prepare(folder, depth, size)``, then ``run(folder,
    in_memory_voxels, out_folder)`` in both :data:`MODES`; yields ``(depth, folder, {mode: result})`` (the
    outputs are in ``folder / "in_memory"`` and ``folder / "chunk_by_chunk"``) and removes the folder after."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for depth in depths:
            folder = Path(tmp) / f"d{depth}"
            folder.mkdir()
            t0 = time.perf_counter()
            prepare(folder, depth, size)
            print(f"wrote {depth}x{size}x{size} volumes in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            runs = {}
            for mode, limit in MODES:
                runs[mode] = run(folder, limit, folder / mode.replace(" ", "_"))
                print(f"  {mode}: {runs[mode]}", file=sys.stderr)
            yield depth, folder, runs
            shutil.rmtree(folder, ignore_errors=True)

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


def run_cli(options_module: str, in_memory_voxels: int, argv: list) -> dict:
    """``tomoseg ARGV`` in a child process, ``options_module._options`` (the command's option builder) set to
    label in memory up to ``in_memory_voxels``; returns ``{code, seconds, peak_rss_mib}``."""
    res = subprocess.run([sys.executable, "-c", CHILD, options_module, str(in_memory_voxels), *map(str, argv)],
                         capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])

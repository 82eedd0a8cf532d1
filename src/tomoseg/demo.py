"""``make demo``: the main job end to end on the shipped default model.

Generates a phantom (a synthetic TXM micropillar volume with exact labels),
segments it with the default model, analyzes the objects, evaluates against
the truth, and writes one HTML report. Run: ``python -m tomoseg.demo OUTDIR``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from .cli import main as cli
from .shipped import model_card_path


MARKER = ".tomoseg-demo"


def run(out: Path, shape=(96, 256, 256), seed: int = 2027) -> int:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():  # never delete a folder the demo did not make
            print(f"tomoseg demo: {out} exists and was not made by the demo; choose another folder", file=sys.stderr)
            return 1
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `make demo` (python -m tomoseg.demo); it replaces this folder on its next run\n",
                              encoding="utf-8")
    z, y, x = (str(s) for s in shape)
    results = out / "results"
    steps = [
        ["phantom", str(out / "image.tif"), "--labels", str(out / "labels.tif"), "--objects",
         str(out / "true_objects.csv"), "--shape", z, y, x, "--seed", str(seed)],
        ["info", str(out / "image.tif")],
        ["segment", str(out / "image.tif"), str(out / "probability.zarr"), "--mask", str(out / "mask.tif")],
        ["analyze", str(out / "probability.zarr"), "--intensity", str(out / "image.tif"), "--csv",
         str(out / "objects.csv"), "--out", str(results)],
        # evaluate joins analyze's results of the same map in one folder: its figures compare prediction and
        # truth, and --report gathers everything into one HTML file; both copy the model and segment's settings
        # from the map's provenance record (its Segmentation section), so nothing is copied by hand
        ["evaluate", str(out / "probability.zarr"), str(out / "labels.tif"), "--intensity", str(out / "image.tif"),
         "--out", str(results), "--report"],
    ]
    t0 = time.time()
    for argv in steps:
        print(f"\n$ tomoseg {' '.join(argv)}", flush=True)
        code = cli(argv)
        if code:
            return code
    print(f"\ndemo done in {time.time() - t0:.0f} s. Open {out / 'results' / 'report.html'} in a browser; "
          f"objects in {out / 'objects.csv'}; the mask {out / 'mask.tif'} opens in Fiji at scale.\n"
          "The default model (v3), what it is for, how it was trained and how well it does on held-out data: "
          f"tomoseg info default, and the model card {model_card_path() or 'docs/model-card.md'}\n"
          "(the earlier default models run with --model v2 or --model v1).")
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output")))

"""Ship a trained run's model as tomoseg's default, with what the model card says recorded inside it.

    python benchmarks/device/ship_default_model.py RUN_FOLDER --recipe configs/default-model-v3.yaml \
        --heldout benchmarks/results/heldout-v2-v3.json --name v3 --checkpoint last --keep-as v2 [--gpu "NVIDIA H200"]

RUN_FOLDER is a `tomoseg train` run (e.g. unpacked from train-default-model.sh's run.tgz). The weights are
copied unchanged (checked tensor by tensor after writing); the metadata gains the recipe's path, the GPU
(for runs trained before `train` recorded it), and the held-out scores of ``--name`` from
``evaluate_default_model.py --json``. The run's config must be the recipe's, apart from where it was
written and the budget overrides `--resume` allows. ``--checkpoint`` picks the run's ``best`` (by validation,
the default) or ``last`` (the end of the schedule) weights. The model being replaced is kept, byte for byte, as
``weights/NAME.safetensors`` with ``--keep-as NAME`` (v1 was kept so; add NAME to ``tomoseg.shipped``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
import yaml

import tomoseg
from tomoseg.checkpoint import default_model_path, save_model
from tomoseg.training.checkpoints import changed_keys
from tomoseg.training.config import config_from_dict


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--recipe", required=True, type=Path)
    ap.add_argument("--heldout", required=True, type=Path, help="evaluate_default_model.py --json output")
    ap.add_argument("--name", required=True, help="the model's name in that JSON")
    ap.add_argument("--gpu", help="the GPU it was trained on, where the run did not record it")
    ap.add_argument("--checkpoint", choices=["best", "last"], default="best")
    ap.add_argument("--keep-as", help="keep the model being replaced as weights/NAME.safetensors (unchanged)")
    ap.add_argument("--dest", type=Path, default=default_model_path())
    args = ap.parse_args(argv)

    recipe = config_from_dict(yaml.safe_load(args.recipe.read_text())).to_dict()
    used = config_from_dict(yaml.safe_load((args.run / "config.yaml").read_text())).to_dict()
    changed = changed_keys(used, recipe)  # what a resume may change (budgets, device, output) may differ
    if changed:
        sys.exit(f"{args.run} was not trained with {args.recipe}: {', '.join(changed)} differ")
    source = args.run / f"{args.checkpoint}.safetensors"
    model = tomoseg.load_model(source)
    meta = dict(model.metadata)
    meta["training"] = {**meta.get("training", {}), "recipe": args.recipe.as_posix(), "checkpoint": args.checkpoint}
    trained_on = dict(meta.get("trained_on", {}))
    if args.gpu and "gpu" not in trained_on:
        trained_on["gpu"] = args.gpu
    meta["trained_on"] = trained_on
    scores = json.loads(args.heldout.read_text())[args.name]
    meta["held_out"] = {k: scores[k] for k in ("mean", "mean_physics", "best_threshold")}
    meta["held_out"]["benchmark"] = "benchmarks/evaluate_default_model.py"

    if args.keep_as and args.dest.exists():
        kept = args.dest.with_name(f"{args.keep_as}.safetensors")
        if kept.exists():
            sys.exit(f"{kept} exists already; choose another --keep-as")
        shutil.copyfile(args.dest, kept)
        print(f"kept the model it replaces as {kept}")
    save_model(model, args.dest, meta, overwrite=True)
    shipped = tomoseg.load_model(args.dest)
    for name, tensor in model.state_dict().items():
        if not torch.equal(tensor, shipped.state_dict()[name]):
            sys.exit(f"{args.dest}: tensor {name} changed while shipping")
    print(f"shipped {source} as {args.dest} (sha256 {shipped.sha256[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

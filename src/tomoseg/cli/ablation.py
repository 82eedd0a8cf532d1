"""Sub-command ``ablation``."""

from __future__ import annotations

from .registry import command


@command("ablation")
def _ablation(sub):
    p = sub.add_parser("ablation", help="train and compare network configurations and classical baselines",
                       description="Reproduce the paper's ablation study (Table 2) on phantoms or your own data: "
                                   "train each configuration with the same data, budget and seed, score them and "
                                   "the threshold and random-forest baselines on the same held-out phantoms, and "
                                   "write results.csv, results.md (the table and each row's confusion counts), "
                                   "f1_vs_parameters.png and confusion_matrices/. Rerunning the same "
                                   "command resumes; rows, baselines or the held-out set may change in between "
                                   "(only new rows train), the training recipe may not. Example: ablation.yaml, "
                                   "installed with tomoseg and found by name "
                                   "(tomoseg ablation ablation.yaml; tomoseg train --example ablation prints it).")
    p.add_argument("config", help="ablation YAML config: a file, or an installed example by name (ablation.yaml)")
    p.add_argument("--output", help="study folder (overrides the config's output)")
    p.set_defaults(run=_run)


def _run(args) -> int:
    from . import progress_enabled
    from ..ablation import load_ablation_config, run_ablation

    cfg = load_ablation_config(args.config)
    if args.output is not None:
        from dataclasses import replace

        from ..errors import TomosegError

        if not args.output.strip():
            raise TomosegError("--output '': give a folder for the study")

        cfg = replace(cfg, output=args.output)
    out = run_ablation(cfg, progress=progress_enabled(args))
    print((out / "results.md").read_text(encoding="utf-8"))
    print(f"ablation -> {out} (results.csv, results.md, f1_vs_parameters.png, confusion_matrices/)")
    return 0

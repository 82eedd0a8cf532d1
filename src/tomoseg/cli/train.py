"""Sub-command ``train``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .registry import command


@command("train")
def _train(sub):
    p = sub.add_parser("train", help="train or fine-tune a model from a YAML config",
                       description="Train or fine-tune a model. Example configs are installed with tomoseg and "
                                   "found by name (tomoseg train train-phantoms.yaml); --example NAME prints one "
                                   "to copy (tomoseg train --example finetune-default > my.yaml). The run folder "
                                   "gets config.yaml, metrics.csv, learning_curve.png, best.safetensors and "
                                   "last.safetensors.")
    p.add_argument("config", help="YAML config: a file, or the name of an installed example (see --example list)")
    p.add_argument("--example", action=PrintExample, metavar="NAME",
                   help="print the installed example config NAME (e.g. finetune-default) and exit; 'list' lists "
                        "them")
    p.add_argument("--output", help="run folder (overrides the config's output)")
    p.add_argument("--resume", action="store_true", help="continue a stopped run in the same folder")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--device", help="override the device (auto, cpu, cuda or cuda:N)")
    p.add_argument("--init", metavar="MODEL", help="start from this model: 'default' (the shipped one), 'v2', 'v1' or a "
                                                    ".safetensors file; overrides the config's init")
    p.set_defaults(run=_run_train)


class PrintExample(argparse.Action):
    """``--example NAME`` prints an installed example config and exits, like ``--help`` (no config needed)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        from ..training.config import shipped_configs

        shipped = shipped_configs()
        name = value if value in shipped else f"{value}.yaml"
        if value != "list" and name not in shipped:
            parser.error(f"--example {value}: no such example; choose one of {', '.join(shipped)}")
        text = "\n".join(shipped) + "\n" if value == "list" else shipped[name].read_text(encoding="utf-8")
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # (tomoseg train --example list | head -3)
            from . import _quiet_stdout

            _quiet_stdout()
        parser.exit()


def _run_train(args) -> int:
    from dataclasses import replace

    from . import progress_enabled
    from ..training import load_config, train

    from ..errors import TomosegError

    cfg = load_config(args.config)
    # every option given is applied or refused, never dropped: 0 and "" are values too (is not None)
    changes = {k: v for k, v in (("output", args.output), ("epochs", args.epochs), ("device", args.device),
                                 ("init", args.init)) if v is not None}
    for option in ("output", "device", "init"):
        if option in changes and not changes[option].strip():
            raise TomosegError(f"--{option} '': give a value or leave the option out")
    if "epochs" in changes and changes["epochs"] < 1:
        raise TomosegError(f"--epochs {changes['epochs']}: give at least 1")
    if changes:
        cfg = replace(cfg, **changes)
    try:
        run = train(cfg, resume=args.resume, progress=progress_enabled(args))
    except BaseException:
        # the resume hint of a stop (cli._resume_hint) only where a finished epoch is there to resume from
        from ..training.checkpoints import STATE

        args.resumable = (Path(cfg.output) / STATE).exists()
        raise
    print(f"trained -> {run} (best.safetensors, last.safetensors, metrics.csv, learning_curve.png)")
    return 0

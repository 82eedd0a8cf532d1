"""Where sub-commands register themselves (kept apart so command modules need not import ``cli``)."""

from __future__ import annotations

import argparse

COMMANDS: dict = {}


def command(name: str):
    """Register ``build(subparsers)``, which adds the sub-command and sets ``run`` as its default."""

    def deco(build):
        COMMANDS[name] = (name, build)
        return build

    return deco


def voxel_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="voxel size in nm; overrides the file's")


def overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")

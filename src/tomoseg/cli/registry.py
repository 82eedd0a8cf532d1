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


def length_nm(text: str) -> float:
    """A length in nm from ``650``, ``650nm``, ``0.65um``, ``0.65µm`` or ``6.5A`` (argparse type)."""
    from ..io.units import parse_length_nm

    try:
        return parse_length_nm(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def voxel_size_arg(p: argparse.ArgumentParser, default=None) -> None:
    p.add_argument("--voxel-size", nargs=3, type=length_nm, metavar=("Z", "Y", "X"), default=default,
                   help="voxel size in nm (or with a unit: 0.65um); overrides the file's")


def checked_voxel_size(values):
    """``--voxel-size`` values as a validated (z, y, x) nm tuple (None if not given); warns when implausible."""
    from ..io.volume import checked_voxel_size as checked

    return checked(values, "--voxel-size")


def threshold_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--threshold", type=int, default=127, help=help)


def check_threshold(value: int) -> int:
    from ..objects.reading import check_threshold as checked

    return checked(value, "--threshold")


def overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")

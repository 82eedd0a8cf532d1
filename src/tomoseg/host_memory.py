"""How much memory this process may still take: the least of the machine's available memory (psutil), the
room under its cgroup's limit (a container, a SLURM job, systemd) and the room under its address-space limit
(``ulimit -v``, ``prlimit --as``).

A job scheduler's limit is not the machine's: a node with 200 GB free may give a job 8 GB, and a process that
goes past it is killed by the kernel without a word. ``segment`` checks its windows against this figure before
the work (:mod:`tomoseg.inference.memory_check`), and its chunk cache and in-memory copy are sized by it.
"""

from __future__ import annotations

import os
from pathlib import Path

UNLIMITED = 2**60  # cgroup v1 writes "no limit" as a number near 2**63


def available_memory() -> int | None:
    """The bytes this process may still take (the least of the figures in the module's description), or None
    where none can be had."""
    figure = memory_headroom()
    return None if figure is None else figure[0]


def memory_headroom() -> tuple[int, str] | None:
    """(bytes, which limit binds: ``"available memory"``, ``"the cgroup's memory limit"`` or ``"the address-space
    limit"``), or None where no figure can be had."""
    figures = []
    try:
        import psutil

        figures.append((int(psutil.virtual_memory().available), "available memory"))
    except Exception:  # noqa: BLE001 - psutil missing or the platform's figure unreadable
        pass
    room = cgroup_headroom()
    if room is not None:
        figures.append((room, "the cgroup's memory limit"))
    room = address_space_headroom()
    if room is not None:
        figures.append((room, "the address-space limit"))
    return min(figures, key=lambda f: f[0]) if figures else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _stat(path: Path, key: str) -> int:
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def cgroup_headroom(root="/sys/fs/cgroup", proc_cgroup="/proc/self/cgroup") -> int | None:
    """The room under the memory limits of this process's cgroup and the cgroups above it: limit minus usage,
    usage without the inactive page cache (which the kernel reclaims before it kills), the least over the
    limited ones; None where none is limited (or cgroups cannot be read: not Linux).

    cgroup v2 (``memory.max``, ``memory.current``) and v1 (``memory.limit_in_bytes``, ``memory.usage_in_bytes``).
    """
    root = Path(root)
    lines = (_read(Path(proc_cgroup)) or "").splitlines()
    rooms = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        v2 = controllers == ""
        if not v2 and "memory" not in controllers.split(","):
            continue
        base = root if v2 else root / "memory"
        if not base.is_dir():
            continue
        folder = base / rel.lstrip("/")
        while True:
            room = _room_v2(folder) if v2 else _room_v1(folder)
            if room is not None:
                rooms.append(room)
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return max(0, min(rooms)) if rooms else None


def _room_v2(folder: Path) -> int | None:
    limit = _read(folder / "memory.max")
    current = _read(folder / "memory.current")
    if limit is None or not limit.isdigit() or current is None or not current.isdigit():
        return None
    return int(limit) - (int(current) - _stat(folder / "memory.stat", "inactive_file"))


def _room_v1(folder: Path) -> int | None:
    limit = _read(folder / "memory.limit_in_bytes")
    usage = _read(folder / "memory.usage_in_bytes")
    if limit is None or not limit.isdigit() or int(limit) >= UNLIMITED or usage is None or not usage.isdigit():
        return None
    return int(limit) - (int(usage) - _stat(folder / "memory.stat", "total_inactive_file"))


def address_space_headroom() -> int | None:
    """The room under this process's address-space limit (``RLIMIT_AS``: ``ulimit -v``): the limit minus the
    address space already mapped (``VmSize``); None where there is no limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    size = mapped_bytes()
    return None if size is None else max(0, int(soft) - size)


def mapped_bytes() -> int | None:
    """The address space this process has mapped (``VmSize``; Linux), or None."""
    return _stat_kib(f"/proc/{os.getpid()}/status", "VmSize:")


def _stat_kib(path: str, key: str) -> int | None:
    for line in (_read(Path(path)) or "").splitlines():
        if line.startswith(key):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None

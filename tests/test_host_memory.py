"""The memory this process may still take: psutil's available memory, a cgroup's limit (containers, SLURM), the
address-space limit; the least of them (review S8: nothing read /sys/fs/cgroup/memory.max)."""

import pytest

from tomoseg import host_memory


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_room_is_the_limit_less_the_usage_without_inactive_page_cache_over_the_ancestors(tmp_path):
    root = tmp_path / "cgroup"
    _write(tmp_path / "self", "0::/job/step\n")
    _write(root / "job" / "memory.max", "8000000000\n")
    _write(root / "job" / "memory.current", "7000000000\n")
    _write(root / "job" / "memory.stat", "anon 5000000000\ninactive_file 1000000000\nactive_file 1\n")
    _write(root / "job" / "step" / "memory.max", "max\n")  # the step itself is not limited: its parent is
    _write(root / "job" / "step" / "memory.current", "6000000000\n")
    assert host_memory.cgroup_headroom(root, tmp_path / "self") == 2_000_000_000
    _write(root / "job" / "step" / "memory.max", "6500000000\n")
    assert host_memory.cgroup_headroom(root, tmp_path / "self") == 500_000_000  # the tighter one


def test_cgroup_v1_memory_controller_and_no_limit(tmp_path):
    root = tmp_path / "cgroup"
    _write(tmp_path / "self", "5:cpu,cpuacct:/slurm/job1\n4:memory:/slurm/job1\n0::/\n")
    _write(root / "memory" / "slurm" / "job1" / "memory.limit_in_bytes", "4000000000\n")
    _write(root / "memory" / "slurm" / "job1" / "memory.usage_in_bytes", "1500000000\n")
    _write(root / "memory" / "slurm" / "job1" / "memory.stat", "total_inactive_file 500000000\n")
    assert host_memory.cgroup_headroom(root, tmp_path / "self") == 3_000_000_000
    _write(root / "memory" / "slurm" / "job1" / "memory.limit_in_bytes", "9223372036854771712\n")  # no limit
    assert host_memory.cgroup_headroom(root, tmp_path / "self") is None
    assert host_memory.cgroup_headroom(root, tmp_path / "missing") is None


def test_the_least_figure_binds_and_is_named(monkeypatch):
    import psutil

    class Memory:
        available = 20 * 10**9

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory)
    monkeypatch.setattr(host_memory, "cgroup_headroom", lambda: 3 * 10**9)
    monkeypatch.setattr(host_memory, "address_space_headroom", lambda: None)
    assert host_memory.memory_headroom() == (3 * 10**9, "the cgroup's memory limit")
    assert host_memory.available_memory() == 3 * 10**9
    monkeypatch.setattr(host_memory, "address_space_headroom", lambda: 10**9)
    assert host_memory.memory_headroom() == (10**9, "the address-space limit")


def test_address_space_room_under_an_rlimit(monkeypatch):
    resource = pytest.importorskip("resource")
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert host_memory.address_space_headroom() is None
    monkeypatch.setattr(resource, "getrlimit", lambda which: (2**50, resource.RLIM_INFINITY))
    room = host_memory.address_space_headroom()
    assert room is not None and 0 < room < 2**50  # the limit less what is mapped already

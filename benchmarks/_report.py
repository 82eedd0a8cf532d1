"""What every benchmark ends with: print its table and write it to a file (the script's folder is on sys.path)."""

import re
from pathlib import Path


def machine_and_time() -> str:
    """Where and when a benchmark ran, as its results say it: ``x86_64, 2 cores, 2026-11-28 10:03 UTC; load
    average at the start 5.5`` (called at the start)."""
    import os
    import platform
    import time

    return (f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"load average at the start {os.getloadavg()[0]:.1f}")


def emit(table: str, out) -> None:
    print(table)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(table)


def table_body(caption: str, columns, rows) -> str:
    """A section's body: ``caption``, then a Markdown table of ``columns`` (the first left-aligned, the others
    right-aligned) whose ``rows`` are already formatted lines."""
    header = "| " + " | ".join(columns) + " |"
    align = "|---|" + "---:|" * (len(columns) - 1)
    return "\n".join([caption, "", header, align, *rows, ""]) + "\n"


def emit_section(out, key: str, body: str, *, title: str, intro: str) -> str:
    """Replace (or add) the section ``key`` of the results file ``out``, keeping its other sections (other
    machines, volumes, notes written by hand); print it and return it. A new file starts with ``# title``
    and ``intro``."""
    path = Path(out)
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    head = f"# {title}\n\n{intro}\n"
    text = path.read_text() if path.exists() else head
    if not text.startswith(f"# {title}"):
        text = head
    section = f"{begin}\n## {key}\n\n{body}{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(section)
    return section

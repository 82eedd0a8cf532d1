"""What every benchmark ends with: print its table and write it to a file (the script's folder is on sys.path)."""

from pathlib import Path


def emit(table: str, out) -> None:
    print(table)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(table)

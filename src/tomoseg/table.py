"""Tidy tables as ``dict[str, np.ndarray]`` (one row per object, one scalar per column), and CSV I/O.

A plain dict of equal-length columns keeps the core free of a pandas
dependency; ``pandas.DataFrame(table)`` turns one into a data frame.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .errors import TomosegError

Table = dict  # dict[str, np.ndarray], all columns of one length


def n_rows(table: Table) -> int:
    return len(next(iter(table.values()))) if table else 0


def write_csv(table: Table, path, *, overwrite: bool = False, written=None) -> Path:
    """Write a table as CSV (atomically; refuses to replace an existing file unless ``overwrite``).

    ``written``: a file this function wrote from the same table just before (``analyze --csv`` and its results
    folder's objects.csv), copied instead of formatting millions of cells again."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise TomosegError(f"{path}: already exists; pass --overwrite to replace it")
    tmp = path.with_name(path.name + ".partial")
    if written is not None and Path(written).resolve() != path.resolve():
        import shutil

        shutil.copyfile(written, tmp)
        return _put_in_place(tmp, path)
    columns = list(table)
    # numbers never need the csv module's quoting: their rows are joined as strings (3.5x its writer, which was
    # half of writing an objects table); a table with text, or of one column (an empty cell would be a blank line,
    # which the csv module writes as ""), goes through the writer
    plain = len(columns) > 1 and all(np.asarray(table[c]).dtype.kind in "biuf" for c in columns)
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)  # the excel dialect: lines end in \r\n
        writer.writerow(columns)
        n = n_rows(table)
        for start in range(0, n, CSV_BLOCK_ROWS):  # a block of rows formatted column by column at a time
            block = slice(start, min(start + CSV_BLOCK_ROWS, n))
            rows = zip(*(_cells(np.asarray(table[c][block])) for c in columns))
            if plain:
                fh.write("\r\n".join(map(",".join, rows)) + "\r\n")
            else:
                writer.writerows(rows)
    return _put_in_place(tmp, path)


def _put_in_place(tmp: Path, path: Path) -> Path:
    tmp.replace(path)
    from .io.result_stamps import stamp_results

    stamp_results([path])  # an edit made later is then told apart (never replaced by --overwrite)
    return path


CSV_BLOCK_ROWS = 65536  # rows formatted at once: their cells as strings cost about 1.5 KB a row


def _cells(column: np.ndarray) -> list:
    """:func:`_fmt` of each value of a column, as whole columns: integers and float64 through Python's own
    ``str``/``repr`` of ``tolist()`` (the same text: NumPy's float64 prints as Python's float, the shortest
    round trip); other types value by value. About 5x faster than a cell at a time (an objects table of
    millions of rows took minutes)."""
    if column.dtype.kind in "iu":
        return list(map(str, column.tolist()))
    if column.dtype.kind == "b":
        return np.where(column, "True", "False").tolist()
    if column.dtype == np.float64:
        # repr of every value by the builtin itself (a Python function a cell took 3x as long: the CSV of 405k
        # objects was most of analyze's time); then the cells _fmt writes otherwise: NaN empty, 3.0 as 3
        texts = list(map(float.__repr__, column.tolist()))
        for i in np.flatnonzero(np.isnan(column)).tolist():
            texts[i] = ""
        for i in np.flatnonzero(np.isfinite(column) & (column == np.trunc(column))).tolist():
            if texts[i].endswith(".0"):
                texts[i] = texts[i][:-2]
        return texts
    return [_fmt(v) for v in column]


def _fmt(value) -> str:
    """A cell: integers (and integer-valued floats, e.g. a voxel count in a column holding NaN) as integers,
    other floats in the shortest form that reads back as the same value of their type (float32 ones without
    the digits a float64 adds: 0.1, not 0.100000001490116), NaN as an empty cell."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        text = str(value) if isinstance(value, np.floating) else repr(value)  # shortest round trip (NumPy, Python)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def read_csv(path) -> Table:
    """Read a CSV written by :func:`write_csv`; numeric columns become float or int arrays."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return _columns(rows)


def read_csv_head(path, rows: int) -> tuple[Table, int]:
    """The first ``rows`` rows of a CSV (as :func:`read_csv` reads them) and how many rows it holds in all,
    the rest counted as they stream past: memory for ``rows`` rows, whatever the file's length (a report's
    preview of an objects table of millions of rows held them all as Python strings, about 2 KB a row)."""
    import itertools

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        head = list(itertools.islice(reader, int(rows) + 1))
        total = max(len(head) - 1, 0) + sum(1 for _ in reader)
    return _columns(head), total


def _columns(rows: list) -> Table:
    """A header row and the rows under it as columns: int, else float (empty cells NaN), else strings."""
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    table = {}
    for j, name in enumerate(header):
        values = [r[j] for r in body]
        try:
            ints = [int(v) for v in values]
            table[name] = np.asarray(ints, dtype=np.int64)
        except ValueError:
            try:
                table[name] = np.asarray([float(v) if v != "" else np.nan for v in values], dtype=np.float64)
            except ValueError:
                table[name] = np.asarray(values, dtype=object)
    return table

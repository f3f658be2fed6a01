"""Export formats: rows arriving a chunk at a time -> the bytes of a CSV, NDJSON or Parquet file, a
piece per chunk, so an export of any size is written in the memory of one chunk. CSV and NDJSON are
pure; Parquet is the CSV converted by a child process (parquet_writer.py)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
ExportFormat = Literal[tuple(MEDIA_TYPES)]  # type: ignore[valid-type]
TableFormat = Literal["csv", "ndjson"]


def encode(fmt: str, columns: Sequence[str], types: Sequence[type], chunks: Iterable[Sequence[tuple]]
           ) -> Iterator[bytes]:
    """The file in format `fmt`: a header (CSV), then one piece per chunk of rows; `types` are the
    Python types of the columns (int, float, bool or str; None is a missing value in any column)."""
    if fmt == "csv":
        return _csv(columns, chunks)
    if fmt == "ndjson":
        return _ndjson(columns, chunks)
    from metrics_service.parquet_writer import parquet

    return parquet(list(columns), list(types), _csv(columns, chunks))


def _csv(columns: Sequence[str], chunks: Iterable[Sequence[tuple]]) -> Iterator[bytes]:
    """RFC 4180 with a header row; a missing value is an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    yield buffer.getvalue().encode()
    for rows in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(rows)
        yield buffer.getvalue().encode()


def _ndjson(columns: Sequence[str], chunks: Iterable[Sequence[tuple]]) -> Iterator[bytes]:
    """One JSON object per line, with every column (null for a missing value; a value JSON has no type
    for, such as a decimal, as its text)."""
    for rows in chunks:
        yield "".join(json.dumps(dict(zip(columns, row, strict=True)), separators=(",", ":"), default=str) + "\n"
                      for row in rows).encode()

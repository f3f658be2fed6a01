"""Export formats (pure): rows arriving a chunk at a time -> the bytes of a CSV, NDJSON or Parquet
file, a piece per chunk, so an export of any size is written in the memory of one chunk."""
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
    return _parquet(columns, types, chunks)


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
    """One JSON object per line, with every column (null for a missing value)."""
    for rows in chunks:
        yield "".join(json.dumps(dict(zip(columns, row, strict=True)), separators=(",", ":")) + "\n"
                      for row in rows).encode()


class _Pieces:
    """The file object a ParquetWriter writes to: it keeps what was written until taken."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def _parquet(columns: Sequence[str], types: Sequence[type], chunks: Iterable[Sequence[tuple]]) -> Iterator[bytes]:
    """One row group per chunk, each sent as soon as it is written; the footer (the row groups'
    metadata, a few hundred bytes each) at the end."""
    import pyarrow as pa  # imported on the first Parquet export only: about 45 MB per worker
    import pyarrow.parquet as pq

    arrow = {int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    schema = pa.schema([(name, arrow.get(kind, pa.string())) for name, kind in zip(columns, types, strict=True)])
    sink = _Pieces()
    writer = pq.ParquetWriter(sink, schema)
    try:
        for rows in chunks:
            if rows:
                values = zip(*rows, strict=True)
                writer.write_table(pa.Table.from_arrays(
                    [pa.array(column, type=field.type) for column, field in zip(values, schema, strict=True)],
                    schema=schema))
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()

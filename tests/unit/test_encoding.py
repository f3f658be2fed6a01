"""The export formats: what goes in comes out, a piece per chunk; a failed Parquet export has no footer."""
from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metrics_service.encoding import encode

COLUMNS = ["id", "name", "score", "note"]
TYPES = [int, str, float, str]
ROWS = [(1, "plain", 0.5, None), (2, 'comma, "quote"', -1.25, "line\nbreak"), (3, "ünïcödé ✓", 0.0, "x")]


def pieces(fmt, chunks):
    return list(encode(fmt, COLUMNS, TYPES, chunks))


def test_csv_has_a_header_and_one_piece_per_chunk():
    out = pieces("csv", [ROWS[:2], ROWS[2:]])
    assert len(out) == 3  # the header, then each chunk
    rows = list(csv.reader(io.StringIO(b"".join(out).decode(), newline="")))
    assert rows[0] == COLUMNS
    assert rows[1:] == [[str(v) if v is not None else "" for v in row] for row in ROWS]


def test_ndjson_is_one_object_per_row():
    out = pieces("ndjson", [ROWS[:1], ROWS[1:]])
    assert len(out) == 2
    assert [json.loads(line) for line in b"".join(out).decode().splitlines()] == [
        dict(zip(COLUMNS, row, strict=True)) for row in ROWS]


def test_ndjson_writes_a_decimal_as_its_text():
    from decimal import Decimal

    out = b"".join(encode("ndjson", ["value"], [Decimal], [[(Decimal("12.50"),)]]))
    assert json.loads(out) == {"value": "12.50"}


def test_parquet_keeps_types_and_values():
    table = pq.read_table(io.BytesIO(b"".join(pieces("parquet", [ROWS[:2], ROWS[2:]]))))
    assert table.schema == pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64()),
                                      ("note", pa.string())])
    assert table.to_pylist() == [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]


def test_parquet_is_written_in_row_groups_as_it_goes():
    chunks = [[(i, "x" * 40, float(i), None) for i in range(start, start + 10_000)]
              for start in range(0, 80_000, 10_000)]
    out = pieces("parquet", chunks)
    file = pq.ParquetFile(io.BytesIO(b"".join(out)))
    assert file.metadata.num_rows == 80_000 and file.metadata.num_row_groups > 1
    assert len(out) > 1  # sent before the end


def test_a_failed_parquet_export_raises_before_the_footer():
    def chunks():
        yield ROWS
        raise RuntimeError("the database went away")

    out = []
    with pytest.raises(RuntimeError, match="went away"):
        for piece in encode("parquet", COLUMNS, TYPES, chunks()):
            out.append(piece)
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(b"".join(out)))

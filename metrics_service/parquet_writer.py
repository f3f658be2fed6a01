"""Parquet exports, written by a child process: CSV with a header row in on stdin, Parquet out on
stdout, one row group per block of about 1 MB of CSV, each sent as soon as it is written.

Arrow's libraries take about 90 MB of resident memory once loaded, and a worker would keep them for
the rest of its life; the child (a plain interpreter with pyarrow, about 130 MB at its peak) gives
them back when the export ends. It is run by its path, not as a module of the package, so it
imports nothing of the service.

    python metrics_service/parquet_writer.py '[["id", "int"], ["event_id", "str"], ...]' < in.csv > out.parquet
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

ARROW_TYPES = {int: "int", float: "float", bool: "bool"}  # anything else is text
READ_BYTES = 1 << 16


def parquet(columns: list[str], types: list[type], csv_pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The Parquet file of a CSV stream (header row first), as the child writes it. An export that
    fails on the way (the database, the child) raises before the file's footer: the answer is cut
    short, and a reader refuses a Parquet file without its footer."""
    schema = json.dumps([[name, ARROW_TYPES.get(kind, "str")] for name, kind in zip(columns, types, strict=True)])
    # Arrow's allocations from the C library's malloc, which hands freed blocks back at once, rather than
    # its jemalloc pool, which keeps them for a while: the child's peak memory no longer grows with how
    # fast the CSV arrives.
    child = subprocess.Popen([sys.executable, str(Path(__file__)), schema], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"})
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            for piece in csv_pieces:
                child.stdin.write(piece)
            child.stdin.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side, which raises it
            failure.append(exc)
            child.kill()

    feeder = threading.Thread(target=feed, name="parquet-feed", daemon=True)
    feeder.start()
    try:
        while piece := child.stdout.read1(READ_BYTES):
            yield piece
        feeder.join()
        if failure:
            raise failure[0]
        if child.wait() != 0:
            raise RuntimeError(f"the Parquet writer failed: {child.stderr.read().decode(errors='replace')[-2000:]}")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        feeder.join(5)
        for stream in (child.stdout, child.stderr):
            stream.close()


def main(schema_json: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    kinds = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    schema = pa.schema([(name, kinds[kind]) for name, kind in json.loads(schema_json)])
    reader = pa_csv.open_csv(
        sys.stdin.buffer, read_options=pa_csv.ReadOptions(block_size=1 << 18, use_threads=False),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(column_types=schema, strings_can_be_null=True,
                                              null_values=[""], quoted_strings_can_be_null=False))
    with pq.ParquetWriter(sys.stdout.buffer, schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            sys.stdout.buffer.flush()
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main(sys.argv[1])
    # Done: the file is written and flushed. Leave without the interpreter's shutdown, in which Arrow's
    # I/O threads could still be winding down (it aborted 1 export in 60 with std::terminate).
    os._exit(0)

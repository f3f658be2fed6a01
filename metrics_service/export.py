"""GET /events/export (the raw events) and GET /experiments/<key>/export (one row per visitor: what
the readouts count), streamed a chunk at a time in constant memory and resumable with `after`."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from flask import Blueprint, Response, current_app, request
from sqlalchemy import Column

from core.events import from_millis
from core.web import parse_model
from metrics_service.encoding import MEDIA_TYPES, encode
from metrics_service.schemas import EventExportQuery, ExperimentExportQuery
from metrics_service.store import MetricsStore

bp = Blueprint("export", __name__)
EVENT_CHUNK = 1000  # raw events per page read: each page one short read, a few MB of rows in the worker


def python_type(column: Column) -> type:
    try:
        return column.type.python_type
    except NotImplementedError:  # a column type without one is exported as text
        return str


def event_chunks(store: MetricsStore, query: EventExportQuery, key: int) -> Iterator[list[tuple]]:
    """Pages of raw events after the cursor, each one short read; `key` is the id column's position."""
    after = query.after or 0
    while True:
        rows = store.event_page(after, EVENT_CHUNK, query.experiment, query.since_ms, query.until_ms)
        if rows:
            yield rows
        if len(rows) < EVENT_CHUNK:
            return
        after = rows[-1][key]


def with_times(columns: Sequence[str], chunks: Iterable[list[tuple]]) -> tuple[list[str], Iterator[list[tuple]]]:
    """Columns `<name>_ts` (ms since the epoch) as `<name>_at`, ISO 8601 UTC to the millisecond (pure)."""
    times = [i for i, name in enumerate(columns) if name.endswith("_ts")]

    def iso(ms: int | None) -> str | None:
        return None if ms is None else from_millis(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def convert() -> Iterator[list[tuple]]:
        for rows in chunks:
            yield [tuple(iso(v) if i in times else v for i, v in enumerate(row)) for row in rows]

    return [name.removesuffix("_ts") + "_at" if i in times else name for i, name in enumerate(columns)], convert()


def streamed(fmt: str, name: str, body: Iterator[bytes]) -> Response:
    """A streamed answer (chunked transfer encoding): an export cut short ends without its last chunk,
    so the client sees an error, and resumes with `after`."""
    return Response(body, mimetype=MEDIA_TYPES[fmt].split(";")[0], content_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"',
                             "Cache-Control": "no-store"})


@bp.get("/events/export")
def export_events():
    query = parse_model(EventExportQuery, request.args.to_dict(), "query")
    store = current_app.extensions["metrics_store"]
    columns = store.event_columns()
    names = [column.name for column in columns]
    chunks = event_chunks(store, query, names.index("id"))
    return streamed(query.format, "events", encode(query.format, names, [python_type(c) for c in columns], chunks))


@bp.get("/experiments/<key>/export")
def export_experiment(key: str):
    query = parse_model(ExperimentExportQuery, request.args.to_dict(), "query")
    store = current_app.extensions["metrics_store"]
    names, chunks = with_times(store.visitor_columns(), store.visitor_rows(key, query.after))
    return streamed(query.format, "visitors", encode(query.format, names, [], chunks))

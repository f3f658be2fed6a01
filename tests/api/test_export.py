"""GET /events/export and GET /experiments/<key>/export: credentials, parameters, every column, the
cursor, and the per-visitor export reproducing the readouts (both backends)."""
from __future__ import annotations

import io
import json
import random
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from core.events import METRICS
from metrics_service.statistics import Arm, analyse
from tests.helpers import ADMIN_TOKEN, INGEST_HEADERS, INGEST_KEY, flask_app

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOUR = timedelta(hours=1)


@pytest.fixture
def client(db_url):
    with flask_app("metrics_service", DATABASE_URL=db_url, INGEST_KEY=INGEST_KEY, ADMIN_TOKEN=ADMIN_TOKEN) as app:
        yield app.test_client()


def send(client, rows):
    for start in range(0, len(rows), 1000):
        response = client.post("/events", json=rows[start:start + 1000], headers=INGEST_HEADERS)
        assert response.status_code == 202, response.get_json()


def export(client, path, **params):
    response = client.get(path, query_string=params, headers=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def frame(response, fmt):
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(response.data), keep_default_na=False, na_values=[""])
    if fmt == "ndjson":
        return pd.DataFrame([json.loads(line) for line in response.get_data(as_text=True).splitlines()])
    return pd.read_parquet(io.BytesIO(response.data))


def at(hours_ago: float) -> str:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return (hour - timedelta(hours=hours_ago) + timedelta(minutes=5)).isoformat()


@pytest.mark.parametrize("path", ["/events/export", "/experiments/landing/export"])
def test_exports_need_an_admin_token(client, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers=INGEST_HEADERS).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.parametrize(("path", "query", "fields"), [
    ("/events/export", "format=xml", {"format"}),
    ("/events/export", "after=-1&since=yesterday", {"after", "since"}),
    ("/events/export", "since=2026-02-01&until=2026-01-01", {"since"}),
    ("/events/export", f"after={2**63}&experiment={'x' * 65}", {"after", "experiment"}),
    ("/experiments/landing/export", "format=parquet", {"format"}),
    ("/experiments/landing/export", "after=no-colon", {"after"}),
    ("/experiments/landing/export", "after=bad variant:v1", {"after"}),
])
def test_bad_parameters_are_a_structured_400(client, path, query, fields):
    response = client.get(f"{path}?{query}", headers=ADMIN)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_request" and {e["field"] for e in body["errors"]} == fields


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_event_export_has_every_column_of_every_event(client, fmt):
    send(client, [{"visitor_id": f"v{i}", "variant": "AB"[i % 2], "event_type": "page_view",
                   "properties": {"path": "/, \"quoted\"\n"}, "bot": i == 3,
                   **({"context": {"device": "mobile", "utm_source": "news"}} if i == 0 else {})}
                  for i in range(12)])
    response = export(client, "/events/export", format=fmt)
    assert response.headers["Content-Disposition"] == f'attachment; filename="events.{fmt}"'
    table = frame(response, fmt)
    store = client.application.extensions["metrics_store"]
    assert list(table.columns) == [column.name for column in store.event_columns()]
    assert len(table) == 12 and list(table["id"]) == sorted(table["id"])
    assert sorted(table["visitor_id"]) == sorted(f"v{i}" for i in range(12))
    assert set(table["properties"]) == {json.dumps({"path": "/, \"quoted\"\n"}, separators=(",", ":"))}
    assert table.loc[table["visitor_id"] == "v3", "excluded"].item() == "bot"
    # an exposure's context comes with it, in a column per dimension
    assert list(table.loc[table["visitor_id"] == "v0", ["device", "utm_source"]].iloc[0]) == ["mobile", "news"]
    assert table.loc[table["visitor_id"] != "v0", "device"].isna().all()


def test_event_export_filters_by_experiment_and_exact_time(client):
    send(client, [{"visitor_id": "a", "variant": "A", "event_type": "page_view", "timestamp": at(3)},
                  {"visitor_id": "b", "variant": "A", "event_type": "page_view", "timestamp": at(2)},
                  {"visitor_id": "c", "variant": "A", "event_type": "page_view", "timestamp": at(1)},
                  {"visitor_id": "d", "variant": "A", "event_type": "page_view", "experiment": "other",
                   "timestamp": at(2)}])
    table = frame(export(client, "/events/export", format="ndjson", since=at(2), until=at(1)), "ndjson")
    assert sorted(table["visitor_id"]) == ["b", "d"]
    table = frame(export(client, "/events/export", format="ndjson", experiment="other"), "ndjson")
    assert list(table["visitor_id"]) == ["d"]
    assert export(client, "/events/export", format="ndjson", experiment="none").data == b""


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_event_export_resumes_after_the_last_id_received(client, monkeypatch, fmt):
    monkeypatch.setattr("metrics_service.export.EVENT_CHUNK", 7)  # several pages (and row groups)
    send(client, [{"visitor_id": f"v{i}", "variant": "A", "event_type": "page_view"} for i in range(30)])
    whole = frame(export(client, "/events/export", format=fmt), fmt)
    assert len(whole) == 30
    cut = int(whole["id"].iloc[11])  # a client that received 12 rows before the connection broke
    rest = frame(export(client, "/events/export", format=fmt, after=cut), fmt)
    assert list(whole["id"].iloc[12:]) == list(rest["id"])
    assert list(whole["event_id"].iloc[12:]) == list(rest["event_id"])


def readout(visitors: pd.DataFrame, metric: str, since: datetime | None = None) -> tuple[dict, list[dict]]:
    """The results of /experiments/<key>/results recomputed from the per-visitor export with pandas
    and the statistics functions: exposed = has a page_view, converted = exposed and has the metric;
    a since window keeps the visitors whose first counted event is in or after its hour."""
    if since is not None:
        first = pd.to_datetime(visitors["first_at"], utc=True).dt.floor("h")
        visitors = visitors[first >= pd.Timestamp(since).floor("h")]
    exposed = visitors[visitors["page_view_events"] > 0]
    per_variant = exposed.groupby("variant").agg(visitors=("visitor_id", "size"),
                                                 conversions=(f"{metric}_events", lambda n: int((n > 0).sum())))
    arms = [Arm(name, int(row.visitors), int(row.conversions)) for name, row in per_variant.iterrows()]
    names = [arm.variant for arm in arms]
    result = analyse(arms, names[0], {name: 1 / len(names) for name in names})
    return asdict(result.srm), [asdict(variant) for variant in result.variants]


def visitors_of(rng: random.Random, variant: str, count: int, experiment: str = "landing") -> list[dict]:
    rows = []
    for i in range(count):
        visitor = f"{variant}-{i:04d}"
        hours = rng.choice([5, 3, 1])
        if rng.random() < 0.9:  # a few never see the page: they are no exposure, whatever they do
            rows.append({"visitor_id": visitor, "variant": variant, "event_type": "page_view",
                         "experiment": experiment, "timestamp": at(hours)})
            if rng.random() < 0.3:
                rows.append({"visitor_id": visitor, "variant": variant, "event_type": "page_view",
                             "experiment": experiment, "timestamp": at(hours - 1)})
        for metric, rate in (("cta_click", {"A": 0.3, "B": 0.45, "C": 0.3}[variant]),
                             ("form_submit", {"A": 0.1, "B": 0.16, "C": 0.12}[variant])):
            if rng.random() < rate:
                rows.append({"visitor_id": visitor, "variant": variant, "event_type": metric,
                             "experiment": experiment, "timestamp": at(hours)})
    return rows


def test_experiment_export_reproduces_every_readout(client):
    rng = random.Random(18)
    rows = visitors_of(rng, "A", 400) + visitors_of(rng, "B", 420) + visitors_of(rng, "C", 380)
    rows += visitors_of(rng, "A", 30, experiment="other")
    # left out of every readout, and so of the export: QA overrides, bots, visitors outside coverage
    rows += [{"visitor_id": f"qa{i}", "variant": "A", "event_type": kind, "forced": True}
             for i in range(20) for kind in ("page_view", "form_submit")]
    rows += [{"visitor_id": "crawler", "variant": "B", "event_type": "page_view", "bot": True},
             {"visitor_id": "outside", "variant": "B", "event_type": "page_view", "in_experiment": False}]
    send(client, rows)
    for fmt in ("csv", "ndjson"):
        visitors = frame(export(client, "/experiments/landing/export", format=fmt), fmt)
        assert set(visitors["variant"]) == {"A", "B", "C"}
        assert not set(visitors["visitor_id"]) & {"qa0", "crawler", "outside"}
        for metric in METRICS:
            for since in (None, at(3)):
                params = {"metric": metric, **({"since": since} if since else {})}
                body = client.get("/experiments/landing/results", query_string=params).get_json()
                srm, variants = readout(visitors, metric, datetime.fromisoformat(since) if since else None)
                assert body["srm"]["p_value"] == pytest.approx(srm["p_value"])
                assert body["srm"]["expected_weights"] == pytest.approx(srm["expected_weights"])
                assert body["variants"] == [pytest.approx(v) for v in variants]
                assert [v["visitors"] for v in variants] and all(v["conversions"] for v in variants)


def test_experiment_export_rows_and_cursor(client):
    send(client, [{"visitor_id": "v1", "variant": "B", "event_type": "page_view", "timestamp": at(2)},
                  {"visitor_id": "v1", "variant": "B", "event_type": "page_view", "timestamp": at(1)},
                  {"visitor_id": "v1", "variant": "B", "event_type": "form_submit", "timestamp": at(1)},
                  {"visitor_id": "v2", "variant": "A", "event_type": "cta_click", "timestamp": at(1)},
                  {"visitor_id": "v3", "variant": "A", "event_type": "page_view", "timestamp": at(1)}])
    lines = export(client, "/experiments/landing/export", format="ndjson").get_data(as_text=True).splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["variant"], r["visitor_id"]) for r in rows] == [("A", "v2"), ("A", "v3"), ("B", "v1")]
    v1 = rows[2]
    first = datetime.fromisoformat(at(2)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert v1 == {"variant": "B", "visitor_id": "v1", "first_at": first, "page_view_events": 2,
                  "page_view_first_at": first, "cta_click_events": 0, "cta_click_first_at": None,
                  "form_submit_events": 1, "form_submit_first_at": v1["form_submit_first_at"]}
    assert v1["form_submit_first_at"] > first
    rest = export(client, "/experiments/landing/export", format="ndjson", after="A:v2").get_data(as_text=True)
    assert rest.splitlines() == lines[1:]
    header, *csv_rows = export(client, "/experiments/landing/export", after="A:v3").get_data(as_text=True).splitlines()
    assert header.split(",") == list(v1) and [r.split(",")[1] for r in csv_rows] == ["v1"]

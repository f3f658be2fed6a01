"""GET /events/fold-failures: the events the aggregates leave out because their fold failed on its own
(see MetricsStore.fold_queued), for an admin to look into before a rebuild counts them."""
from __future__ import annotations

from flask import Blueprint, current_app

from core.events import from_millis
from metrics_service.schemas import FoldFailure, FoldFailureList

bp = Blueprint("folding", __name__)
FOLD_FAILURES_SHOWN = 100  # the latest ones; /health counts them all (up to 100,000)


@bp.get("/events/fold-failures")
def fold_failures():
    rows = current_app.extensions["metrics_store"].fold_failures(FOLD_FAILURES_SHOWN)
    return FoldFailureList(failures=[
        FoldFailure(event_id=event_id, experiment=experiment, event_type=event_type, error=error,
                    failed_at=from_millis(failed_at))
        for event_id, experiment, event_type, error, failed_at in rows]).model_dump(mode="json")

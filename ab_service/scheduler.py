"""The scheduler: carries out each due transition of an experiment (start_at, stop_at) and each due
scheduled flag change, as the actor `scheduler` in the audit log.

Each transition happens once however many workers and instances run the scheduler and whenever one
dies: the store claims a transition in the transaction that applies it (an experiment's row is
selected by its due time and the time cleared; a flag change's row is deleted), so a second scheduler
finds nothing to do, and a scheduler killed before its commit leaves the transition to the next tick.
A scheduled start goes through the checks of a manual one (overrides that fit their flags, no running
experiment overriding the same flags for the same visitors); a start they refuse is cleared and
recorded in the audit log as `refused`, not tried again.
"""
from __future__ import annotations

import logging

from ab_service.experiments import check_start
from ab_service.store import AbStore
from core.validation import InvalidRecord
from core.web import ApiError

log = logging.getLogger(__name__)


def run_due(store: AbStore, now: int) -> int:
    """Carry out every transition due at `now` (milliseconds); how many this call carried out or refused.
    Runs in an app context (the checks of a start read the app's store)."""
    done = 0
    for key, name, due in store.due_experiment_times(now):
        with store.experiment_changes():
            done += _experiment_transition(store, key, name, due)
    for schedule in store.flag_schedules(due_by=now):
        outcome = store.carry_out_flag_schedule(schedule)
        if outcome == "refused":
            log.warning("scheduled change %s of flag %r refused (see the audit log)", schedule["id"], schedule["key"])
        done += outcome is not None
    return done


def _experiment_transition(store: AbStore, key: str, name: str, due: int) -> int:
    current = store.experiment_row(key)
    if current is None:
        return 0
    target = "running" if name == "start_at" else "stopped"
    changes = {"status": target} if current.get("status") != target else {}
    try:
        if changes and target == "running":
            check_start(current)
        done = store.carry_out_experiment_time(key, name, due, changes)
    except (ApiError, InvalidRecord) as exc:
        reason = exc.message if isinstance(exc, ApiError) else str(exc)
        log.warning("scheduled %s of experiment %r refused: %s", name.removesuffix("_at"), key, reason)
        return int(store.refuse_experiment_time(key, name, due, reason))
    return int(done is not None)

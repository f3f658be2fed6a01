"""ab_service's records (what is stored and answered), the request bodies that change them and the query
parameters that read them: the rules they must follow, as pydantic models and pure functions (no I/O).

A request body (core.validation.Body) refuses unknown fields and explicit nulls, except in a PATCH where
null removes an optional setting (an experiment's namespace or condition, a flag's allowed values). The
store writes nothing that does not fit its record model, and reads every row through it.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.conditions import DEVICES, MAX_ATTRIBUTE, condition_problems
from core.events import MAX_BATCH, MAX_VISITOR_ID
from core.experiments import (
    DEFAULT_EXPERIMENT,
    MAX_VARIANTS,
    MIN_VARIANTS,
    SITE_EXPERIMENT,
    WEIGHT_TOLERANCE,
    Status,
)
from core.flags import FLAG_TYPES, MAX_ALLOWED, allowed_problem, value_problem
from core.keys import Key
from core.validation import Body, Query
from core.webhooks import EVENTS as WEBHOOK_EVENTS

# Which status an experiment may move to from each status (staying put is always allowed).
TRANSITIONS: dict[str, set[str]] = {
    "draft": {"running", "stopped"},
    "running": {"stopped"},
    "stopped": {"running"},
}
MAX_OVERRIDES = 50  # flags one variant overrides
Coverage = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Overrides = Annotated[dict[Key, Any], Field(max_length=MAX_OVERRIDES)]


class Variant(Body):
    name: Key
    weight: Coverage
    overrides: Overrides = Field(default_factory=dict, description=(
        "flag key -> the value this variant shows; in a PATCH, omitted keeps the variant's overrides"))


def check_variants(variants: list[Variant]) -> list[Variant]:
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate variant names: {', '.join(duplicates)}")
    total = sum(v.weight for v in variants)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"variant weights must sum to 1 (they sum to {total:g})")
    return variants


class Namespace(Body):
    """Experiments in one namespace with disjoint [start, end) ranges never share a visitor."""

    name: Key
    start: Coverage
    end: Coverage

    @model_validator(mode="after")
    def _ordered(self) -> Namespace:
        if not self.start < self.end:
            raise ValueError("start must be below end")
        return self


def check_condition(condition: dict[str, Any]) -> dict[str, Any]:
    problems = condition_problems(condition)
    if problems:
        raise ValueError("; ".join(problems))
    return condition


def not_reserved(key: str) -> str:
    if key == SITE_EXPERIMENT:
        raise ValueError(f"{SITE_EXPERIMENT!r} is reserved (events of visitors in no experiment)")
    return key


Variants = Annotated[list[Variant], Field(min_length=MIN_VARIANTS, max_length=MAX_VARIANTS),
                     AfterValidator(check_variants)]
Condition = Annotated[dict[str, Any], AfterValidator(check_condition),
                      Field(description="a GrowthBook condition over the visitor's attributes")]
Seed = Annotated[StrictStr, Field(min_length=1, max_length=128)]
Description = Annotated[StrictStr, Field(max_length=500)]


def iso_time(when: datetime) -> str:
    """A time as the API writes it: ISO 8601 in UTC, to the millisecond, with a Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A moment with its timezone (an ISO 8601 text with Z or an offset), kept in UTC and written as iso_time.
Timestamp = Annotated[AwareDatetime, AfterValidator(lambda when: when.astimezone(UTC)),
                      PlainSerializer(iso_time, return_type=str)]
START_AT = "when the scheduler starts it (ISO 8601 with a timezone); cleared once carried out or refused"
STOP_AT = "when the scheduler stops it (ISO 8601 with a timezone, after start_at); cleared once carried out"


MetricKeys = Annotated[list[Key], Field(max_length=20, description="metric keys (metrics_service's /metrics)"),
                      AfterValidator(lambda keys: _distinct(keys))]


def _distinct(keys: list[str]) -> list[str]:
    if len(set(keys)) != len(keys):
        raise ValueError("a metric is listed twice")
    return keys


class ExperimentRecord(BaseModel):
    """An experiment as stored and answered (core.experiments.Experiment once read). The first variant
    is the control."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: Key
    description: Description
    variants: Variants
    coverage: Coverage
    seed: Seed | None  # None: the key is the seed
    status: Status
    namespace: Namespace | None
    condition: Condition | None
    start_at: Timestamp | None = None
    stop_at: Timestamp | None = None
    primary_metric: Key | None = None
    secondary_metrics: MetricKeys | None = None  # None (a row from before they existed): none
    guardrail_metrics: MetricKeys | None = None


class ExperimentIn(Body):
    key: Annotated[Key, AfterValidator(not_reserved)]
    description: Description = ""
    variants: Variants
    coverage: Coverage = 1.0
    seed: Seed = None  # omitted: the key is the seed
    status: Status = "draft"
    namespace: Namespace = None  # omitted: none
    condition: Condition = None  # omitted: none
    start_at: Timestamp | None = Field(None, description=START_AT)
    stop_at: Timestamp | None = Field(None, description=STOP_AT)
    primary_metric: Key = None  # omitted: none (readouts default to form_submit)
    secondary_metrics: MetricKeys = []
    guardrail_metrics: MetricKeys = []


class ExperimentPatch(Body):
    NULL_REMOVES: ClassVar[frozenset[str]] = frozenset({"namespace", "condition", "start_at", "stop_at",
                                                        "primary_metric"})
    description: Description = None
    variants: Variants = None
    coverage: Coverage = None
    seed: Seed = None
    status: Status = None
    namespace: Namespace | None = Field(None, description="null removes it (draft only)")
    condition: Condition | None = Field(None, description="null removes it (draft only)")
    start_at: Timestamp | None = Field(None, description=START_AT + "; null cancels it")
    stop_at: Timestamp | None = Field(None, description=STOP_AT + "; null cancels it")

    primary_metric: Key | None = Field(None, description="null removes it")
    secondary_metrics: MetricKeys = None
    guardrail_metrics: MetricKeys = None


def schedule_problems(status: str | None, start_at: datetime | None, stop_at: datetime | None,
                      new: set[str], now: datetime) -> list[dict[str, str]]:
    """The rules of an experiment's schedule: the times being set (`new`) are not in the past, a start
    is for an experiment that is not running, and the stop comes after the start."""
    problems = []
    for name, when in (("start_at", start_at), ("stop_at", stop_at)):
        if name in new and when is not None and when <= now:
            problems.append({"field": name, "message": "must be in the future"})
    if "start_at" in new and start_at is not None and status == "running":
        problems.append({"field": "start_at", "message": "the experiment is running already"})
    if start_at is not None and stop_at is not None and stop_at <= start_at:
        problems.append({"field": "stop_at", "message": "must be after start_at"})
    return problems


def patch_problems(current: dict[str, Any], patch: ExperimentPatch) -> list[dict[str, str]]:
    """Rules that depend on the experiment's current state. current is the stored row as it is, which
    may not fit the record (a row written by hand or by an old version): a rule is checked against
    what can be read, so a PATCH can still repair the rest."""
    problems = []
    status = current.get("status")
    if patch.status and status in TRANSITIONS and patch.status != status and patch.status not in TRANSITIONS[status]:
        problems.append({"field": "status", "message": f"cannot change status from {status} to {patch.status}"})
    if status == "draft":
        return problems
    names = stored_variant_names(current.get("variants"))
    if patch.variants is not None and names is not None and [v.name for v in patch.variants] != names:
        problems.append({"field": "variants", "message": "variant names are fixed once an experiment has started; "
                                                         "weights and overrides change"})
    if patch.seed is not None and patch.seed != current.get("seed"):
        problems.append({"field": "seed", "message": "the seed is fixed once an experiment has started"})
    for name in ("namespace", "condition"):
        if name in patch.model_fields_set and patch.model_dump()[name] != current.get(name):
            problems.append({"field": name, "message": f"the {name} is fixed once an experiment has started"})
    return problems


def stored_variant_names(variants: Any) -> list[str] | None:
    """The variant names of a stored row, or None when its variants cannot be read."""
    if not isinstance(variants, list) or not all(isinstance(v, dict) and "name" in v for v in variants):
        return None
    return [v["name"] for v in variants]


def stored_overrides(variants: Any) -> dict[str, dict[str, Any]]:
    """{variant name: overrides} of a stored row, as far as they can be read."""
    if stored_variant_names(variants) is None:
        return {}
    return {v["name"]: v["overrides"] for v in variants if isinstance(v.get("overrides"), dict)}


def patch_changes(current: dict[str, Any], patch: ExperimentPatch) -> dict[str, Any]:
    """The fields a PATCH changes. A variant sent without overrides keeps those it has."""
    changes = patch.model_dump(exclude_unset=True)
    if patch.variants is not None:
        kept = stored_overrides(current.get("variants"))
        changes["variants"] = [{"name": v.name, "weight": v.weight,
                                "overrides": v.overrides if "overrides" in v.model_fields_set else kept.get(v.name, {})}
                               for v in patch.variants]
    return changes


def override_problems(variants: list[dict[str, Any]], flags: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Each override must name a flag and fit its type and allowed values."""
    problems = []
    for index, variant in enumerate(variants):
        for key, value in variant.get("overrides", {}).items():
            flag = flags.get(key)
            problem = "is not a flag" if flag is None else value_problem(flag["type"], value, flag.get("allowed"))
            if problem:
                problems.append({"field": f"variants.{index}.overrides.{key}",
                                 "message": f"variant {variant['name']}: {key} {problem}"})
    return problems


def fits_flag_type(value: Any, info: ValidationInfo, allow_empty: bool = False) -> Any:
    """A value or off_value must fit the flag's type and allowed values (checked once they are valid)."""
    kind = info.data.get("type")
    problem = value_problem(kind, value, info.data.get("allowed"), allow_empty) if kind else None
    if problem:
        raise ValueError(problem)
    return value


def allowed_fit_type(allowed: list[str] | None, info: ValidationInfo) -> list[str] | None:
    """Allowed values are for string flags, listed once each."""
    kind = info.data.get("type")
    problem = allowed_problem(kind, allowed) if kind and allowed is not None else None
    if problem:
        raise ValueError(problem)
    return allowed


Allowed = Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_ALLOWED,
                                           description="the only values a string flag accepts")]


class FlagRecord(BaseModel):
    """A flag as stored and answered: visitors inside the rollout see value, the rest off_value; a string
    flag with allowed values accepts only those."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: Key
    type: Literal[FLAG_TYPES]  # type: ignore[valid-type]
    allowed: Allowed | None  # None: any value of the type
    value: Any
    off_value: Any
    rollout: Coverage
    description: Description

    _allowed_fit_type = field_validator("allowed")(allowed_fit_type)

    @field_validator("value", "off_value")
    @classmethod
    def _fits_type(cls, value: Any, info: ValidationInfo) -> Any:
        return fits_flag_type(value, info, allow_empty=True)


class FlagIn(Body):
    key: Key
    type: Literal[FLAG_TYPES]  # type: ignore[valid-type]
    allowed: Allowed = None  # omitted: any value of the type
    value: Any
    off_value: Any = None  # omitted: false for a boolean, else the value
    rollout: Coverage = 1.0
    description: Description = ""

    _allowed_fit_type = field_validator("allowed")(allowed_fit_type)

    @field_validator("value", "off_value")
    @classmethod
    def _fits_type(cls, value: Any, info: ValidationInfo) -> Any:
        return fits_flag_type(value, info)


class FlagPatch(Body):
    NULL_REMOVES: ClassVar[frozenset[str]] = frozenset({"allowed"})
    allowed: Allowed | None = Field(None, description="null lifts the restriction")
    value: Any = None
    off_value: Any = None
    rollout: Coverage = None
    description: Description = None


Attribute = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ATTRIBUTE)]


class AssignQuery(Query):
    """GET /assign: the visitor and, optionally, their attributes (as the landing page computes them),
    so the experiment's condition applies."""

    visitor_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_VISITOR_ID)]
    experiment: Key = DEFAULT_EXPERIMENT
    device: Literal[DEVICES] | None = None  # type: ignore[valid-type]
    browser: Attribute | None = None
    os: Attribute | None = None
    utm_source: Attribute | None = None
    utm_medium: Attribute | None = None
    utm_campaign: Attribute | None = None
    referrer_host: Attribute | None = None
    path: Attribute | None = None
    returning: bool | None = None

    def attributes(self) -> dict[str, Any]:
        """GrowthBook attributes: `id` and each attribute given."""
        given = self.model_dump(exclude={"visitor_id", "experiment"}, exclude_none=True)
        return {"id": self.visitor_id, **given}


class AssignmentIn(Body):
    """One assignment the landing page made, to be remembered."""

    experiment: Key
    visitor_id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_VISITOR_ID)]
    variant: Key


Assignments = Annotated[list[AssignmentIn], Field(min_length=1, max_length=MAX_BATCH)]


class AssignmentsStored(BaseModel):
    stored: int = Field(description="how many were new (a visitor's first assignment in an experiment wins)")


class FlagScheduleIn(Body):
    """A change of a flag at a later time (POST /flags/<key>/schedule): `at` and the fields to change."""

    at: Timestamp = Field(description="when the scheduler applies it (ISO 8601 with a timezone, in the future)")
    value: Any = None
    off_value: Any = None
    rollout: Coverage = None
    description: Description = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"at"})


class FlagSchedule(BaseModel):
    id: str
    key: str
    at: str
    changes: dict[str, Any]
    created_by: str


WebhookEvent = Literal[WEBHOOK_EVENTS]  # type: ignore[valid-type]


def http_url(url: str) -> str:
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http or https URL")
    return url


def distinct(items: list[str]) -> list[str]:
    if len(set(items)) != len(items):
        raise ValueError("list each event once")
    return items


class WebhookIn(Body):
    url: Annotated[StrictStr, Field(max_length=2000), AfterValidator(http_url)]
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WEBHOOK_EVENTS)),
                      AfterValidator(distinct)]
    secret: Annotated[StrictStr, Field(min_length=16, max_length=200, description=(
        "signs every payload; omitted: one is generated. Answered only by this request"))] = None


class Webhook(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: str
    created_by: str
    delivered: int = Field(0, description="deliveries done")
    pending: int = Field(0, description="deliveries waiting (being retried)")


class WebhookCreated(Webhook):
    secret: str = Field(description="shown this once")

"""metrics_service's query parameters and answers (pydantic): routes parse with them and build their
answers with them, and the OpenAPI description is built from them."""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.events import (
    DEFAULT_METRIC,
    DIMENSIONS,
    MAX_DIMENSION_VALUE,
    METRICS,
    Dimension,
    EventTypeKey,
    Metric,
    to_millis,
)
from core.experiments import WEIGHT_TOLERANCE
from core.keys import KEY_PATTERN, MAX_KEY_LENGTH, Key
from core.validation import Body, Query
from metrics_service.encoding import ExportFormat, TableFormat
from metrics_service.sequential import SequentialMethod
from metrics_service.series import INTERVALS_MS
from metrics_service.statistics import SEGMENT_ADJUSTMENT, SegmentResult, SrmResult, VariantResult, VerdictCode

Interval = Literal[tuple(INTERVALS_MS)]  # type: ignore[valid-type]
MetricKind = Literal["conversion", "count", "value"]
Direction = Literal["increase", "decrease"]
# A filter value is matched as given (it is not checked against the key pattern: it finds nothing).
Name = Annotated[str, Field(max_length=MAX_KEY_LENGTH)]


def parse_time(value: Any) -> Any:
    """ISO 8601, a date or a date-time (naive means UTC) -> an aware datetime."""
    if not isinstance(value, str):
        return value
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError("not an ISO 8601 date or date-time") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


Time = Annotated[datetime, BeforeValidator(parse_time)]


def parse_weights(text: Any) -> Any:
    """"A:0.5,B:0.5" -> {"A": 0.5, "B": 0.5}; ValueError naming the problem."""
    if not isinstance(text, str):
        return text
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition(":")
        if not sep or not name or not re.match(KEY_PATTERN, name):
            raise ValueError(f"malformed entry {part.strip()!r}: expected VARIANT:WEIGHT")
        try:
            weight = float(value)
        except ValueError as exc:
            raise ValueError(f"weight of {name!r} is not a number") from exc
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {name!r} must be a non-negative number")
        if name in weights:
            raise ValueError(f"variant {name!r} appears twice")
        weights[name] = weight
    if len(weights) < 2:
        raise ValueError("at least two variants are needed")
    if abs(sum(weights.values()) - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights sum to {sum(weights.values()):g}, not 1")
    return weights


Weights = Annotated[dict[str, float], BeforeValidator(parse_weights),
                    WithJsonSchema({"type": "string", "description": "A:0.5,B:0.5"})]


def parse_segment(text: Any) -> Any:
    """"utm_source:google" -> ("utm_source", "google"); ValueError naming the problem."""
    if not isinstance(text, str):
        return text
    name, sep, value = text.partition(":")
    if not sep or not value:
        raise ValueError("expected DIMENSION:VALUE, e.g. utm_source:google")
    if name not in DIMENSIONS:
        raise ValueError(f"unknown dimension {name!r}: one of {', '.join(DIMENSIONS)}")
    if len(value) > MAX_DIMENSION_VALUE:
        raise ValueError(f"a value has at most {MAX_DIMENSION_VALUE} characters")
    return name, value


SegmentFilter = Annotated[tuple[str, str], BeforeValidator(parse_segment),
                          WithJsonSchema({"type": "string", "description": "DIMENSION:VALUE, e.g. utm_source:google: "
                                          "only the visitors whose first exposure had that context, and their events"})]


# Query parameters ------------------------------------------------------------------------------------

class Window(Query):
    """A time window on whole hours (see EventFilter)."""

    since: Time | None = Field(None, description="ISO 8601, inclusive")
    until: Time | None = Field(None, description="ISO 8601, exclusive")

    @model_validator(mode="after")
    def _in_order(self) -> Window:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("window", "after until"), loc=("since",), input=self.since.isoformat())])
        return self

    @property
    def since_ms(self) -> int | None:
        return None if self.since is None else to_millis(self.since)

    @property
    def until_ms(self) -> int | None:
        return None if self.until is None else to_millis(self.until)


class FunnelQuery(Window):
    """The filters of the funnel, which spans its own event types (event_type: 400)."""

    experiment: Name | None = None
    variant: Name | None = None
    segment: SegmentFilter | None = None


class StatsQuery(FunnelQuery):
    """The filters of the event reports (/stats and its timeseries)."""

    event_type: EventTypeKey | None = Field(None, description="a built-in or registered event type (GET "
                                                            "/event-types); any other: 400")


class TimeseriesQuery(StatsQuery):
    interval: Interval = "hour"


class ResultsQuery(Window):
    metric: Key = Field(DEFAULT_METRIC, description="a built-in or defined metric (GET /metrics); since and until "
                                                   "apply to the built-in conversions")
    control: Name | None = Field(None, description="the control variant; default: the first of weights")
    weights: Weights | None = None
    dimension: Dimension | None = Field(None, description="break the readout down by this context dimension")
    segment: SegmentFilter | None = None

    @model_validator(mode="after")
    def _one_cut(self) -> ResultsQuery:
        if self.dimension is not None and self.segment is not None:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("cut", "a breakdown by dimension cannot be restricted to a segment"),
                loc=("segment",), input=self.segment[0])])
        return self


class CumulativeQuery(Window):
    metric: Metric = DEFAULT_METRIC
    interval: Interval = "hour"
    segment: SegmentFilter | None = None


class TrafficQuery(Window):
    dimension: Dimension
    experiment: Name | None = Field(None, description="only this experiment's visitors; default: every visitor")
    metric: Metric = DEFAULT_METRIC
    top: int = Field(20, ge=1, le=200, description="how many values, most visitors first")


MAX_ID = 2**63 - 1  # the largest id a BIGINT holds


class EventExportQuery(Window):
    """GET /events/export. Unlike the stats, the time window is exact (to the millisecond)."""

    format: ExportFormat = "csv"
    experiment: Name | None = None
    after: int | None = Field(None, ge=0, le=MAX_ID,
                              description="resume after the event with this id (the last `id` received)")


def parse_visitor_cursor(value: Any) -> Any:
    """"VARIANT:VISITOR_ID" -> (variant, visitor_id); the variant's pattern has no colon."""
    if not isinstance(value, str):
        return value
    variant, sep, visitor = value.partition(":")
    if not sep or not visitor or not re.fullmatch(KEY_PATTERN, variant):
        raise ValueError("expected VARIANT:VISITOR_ID (the last row's variant and visitor_id)")
    return variant, visitor


VisitorCursor = Annotated[tuple[str, str], BeforeValidator(parse_visitor_cursor),
                          WithJsonSchema({"type": "string", "description": "VARIANT:VISITOR_ID"})]


class ExperimentExportQuery(Query):
    """GET /experiments/<key>/export."""

    format: TableFormat = "csv"
    after: VisitorCursor | None = Field(None, description="resume after this row: the last row's variant:visitor_id")


# Answers ---------------------------------------------------------------------------------------------

class Folding(BaseModel):
    """/health's account of the fold queue (README, "Aggregates kept a moment behind ingest"). Counts
    stop at 100,000; `queued_more` / `failed_more` say there are more. `failed`: events whose fold
    failed on its own, left out of the aggregates (kept in events) until a rebuild."""

    queued: int
    queued_more: bool
    oldest_queued_seconds: float | None  # how long the oldest queued event has waited; None: none waits
    failed: int
    failed_more: bool


class FoldFailure(BaseModel):
    """An event whose fold failed (GET /events/fold-failures): what it is, never whose."""

    event_id: str
    experiment: str | None  # None: the event is no longer stored
    event_type: str | None
    error: str  # the error's type and where it was raised; the log has the rest
    failed_at: datetime


class FoldFailureList(BaseModel):
    failures: list[FoldFailure]  # the latest, newest first


class Accepted(BaseModel):
    accepted: int
    duplicates: int


class Counts(BaseModel):
    events: int
    visitors: int


class Cell(BaseModel):
    variant: str
    event_type: str
    events: int
    visitors: int


class MetricConversion(BaseModel):
    visitors: int
    rate: float | None


# Visitors with a page_view, and how many of them also have each metric event.
VariantConversion = create_model("VariantConversion", visitors=(int, ...),
                                 **{metric: (MetricConversion, ...) for metric in METRICS})


class Stats(BaseModel):
    total_events: int
    unique_visitors: int
    by_variant: dict[str, Counts]
    by_event_type: dict[str, Counts]
    matrix: list[Cell]
    conversion: dict[str, VariantConversion]  # type: ignore[valid-type]
    filters: dict[str, str | None]


class EventPoint(BaseModel):
    bucket: str
    variant: str
    events: int
    visitors: int


class EventSeries(BaseModel):
    interval: Interval
    series: list[EventPoint]


class FunnelStep(BaseModel):
    step: str
    visitors: int
    conversion_from_previous: float | None
    conversion_from_start: float | None


class FunnelVariant(BaseModel):
    variant: str
    steps: list[FunnelStep]


class Funnel(BaseModel):
    experiment: str | None
    steps: list[str]
    variants: list[FunnelVariant]


class Results(BaseModel):
    """The readout of one metric: per variant (the control first), the SRM check and the verdict."""

    experiment: str
    metric: str
    kind: MetricKind = "conversion"
    direction: Direction = "increase"
    method: SequentialMethod = SequentialMethod.MSPRT  # the test behind `significant` and the verdict
    control: str | None
    srm: SrmResult
    variants: list[VariantResult]
    verdict: str
    verdict_code: VerdictCode | None  # what the verdict says, for a reader that writes its own words; None: no data
    verdict_variant: str | None  # the variant the verdict is about
    alpha: float  # significance level of the intervals and of `significant`


class CumulativePoint(BaseModel):
    bucket: str
    variant: str
    visitors: int
    conversions: int
    rate: float


class CumulativeSeries(BaseModel):
    experiment: str
    metric: Metric
    interval: Interval
    series: list[CumulativePoint]


class SegmentResults(BaseModel):
    """The readout of one metric per value of a context dimension (exploratory: see `caution`)."""

    experiment: str
    metric: Metric
    dimension: Dimension
    control: str | None
    segments: list[SegmentResult]  # most visitors first; a visitor is in the segment of their first exposure
    adjustment: Literal[SEGMENT_ADJUSTMENT]  # type: ignore[valid-type]  # how p_value_adjusted is computed
    alpha: float
    min_visitors: int  # per variant, for a segment to be judged
    min_conversions: int
    caution: str


class TrafficValue(BaseModel):
    value: str
    visitors: int
    conversions: int
    rate: float | None


class Traffic(BaseModel):
    """Visitors (by the context of their first exposure), conversions and rate per value of a dimension."""

    dimension: Dimension
    experiment: str | None
    metric: Metric
    total_visitors: int
    values: list[TrafficValue]  # the top values, most visitors first
    more_values: int  # values left out of `values`
# The metrics catalogue ---------------------------------------------------------------------------------

Description = Annotated[StrictStr, Field(max_length=500)]
Cap = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True,
                             description="winsorisation cap of a visitor's value total (value metrics)")]


class EventTypeIn(Body):
    key: Key
    description: Description = ""


class EventTypeRecord(BaseModel):
    key: str
    description: str
    builtin: bool  # one of core.events.EVENT_TYPES


class EventTypeList(BaseModel):
    event_types: list[EventTypeRecord]


def _cap_fits_kind(kind: str | None, cap: float | None) -> None:
    if cap is not None and kind is not None and kind != "value":
        raise ValidationError.from_exception_data("Metric", [InitErrorDetails(
            type=PydanticCustomError("cap", "only value metrics have a cap"), loc=("cap",), input=cap)])


class MetricIn(Body):
    key: Key
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    event_type: Key
    kind: MetricKind
    direction: Direction = "increase"
    cap: Cap = None  # omitted: no cap

    @model_validator(mode="after")
    def _cap(self) -> MetricIn:
        _cap_fits_kind(self.kind, self.cap)
        return self


class MetricPatch(Body):
    NULL_REMOVES: ClassVar[frozenset[str]] = frozenset({"cap"})
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] = None
    direction: Direction = None
    cap: Cap | None = Field(None, description="null removes it")


class MetricRecord(BaseModel):
    key: str
    name: str
    event_type: str
    kind: MetricKind
    direction: Direction
    cap: float | None
    builtin: bool  # a conversion on a built-in event type, always there


class MetricList(BaseModel):
    metrics: list[MetricRecord]


def parse_keys(text: Any) -> Any:
    """"a,b" -> ["a", "b"] (each checked as a key by the field's type)."""
    return [part.strip() for part in text.split(",") if part.strip()] if isinstance(text, str) else text


Keys = Annotated[list[Key], BeforeValidator(parse_keys), WithJsonSchema({"type": "string", "description": "a,b"})]


class SummaryQuery(Query):
    """The experiment's metrics (as ab_service stores them in its definition) and its weights."""

    primary: Key = Field(DEFAULT_METRIC, description="the primary metric")
    secondary: Keys = Field([], description="secondary metrics, comma-separated")
    guardrails: Keys = Field([], description="guardrail metrics, comma-separated")
    control: Name | None = Field(None, description="the control variant; default: the first of weights")
    weights: Weights | None = None


class RecommendationCode(StrEnum):
    SHIP = "ship"  # the primary metric wins and no guardrail is significantly worse
    GUARDRAIL = "guardrail"  # the primary wins but a guardrail is significantly worse: do not ship
    NO_WINNER = "no_winner"  # no variant is significantly better on the primary metric
    KEEP_RUNNING = "keep_running"  # not enough data on the primary metric yet
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"  # visitors are not split as configured
    NO_DATA = "no_data"


class Recommendation(BaseModel):
    code: RecommendationCode
    variant: str | None  # the variant to ship, or the one a guardrail blocked
    blocking_guardrail: str | None  # the guardrail significantly worse for that variant
    method: SequentialMethod  # the test the primary metric was judged with
    sentence: str


class GuardrailResults(Results):
    breached: bool  # some variant is significantly worse on it (ab_service's guardrail.breached webhook)


class Summary(BaseModel):
    experiment: str
    control: str | None
    primary: Results
    secondary: list[Results]
    guardrails: list[GuardrailResults]
    recommendation: Recommendation


class PlanQuery(Query):
    metric: Key = Field(DEFAULT_METRIC, description="a built-in or defined metric")
    mde: Annotated[float, Field(gt=0, allow_inf_nan=False, description="minimum detectable relative effect, "
                                                                       "e.g. 0.1 for 10%")]
    power: Annotated[float, Field(gt=0, lt=1)] = 0.8
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    baseline: Annotated[float, Field(allow_inf_nan=False, description="the control's rate or mean per visitor; "
                                                                      "default: as observed")] | None = None
    std: Annotated[float, Field(gt=0, allow_inf_nan=False, description="mean metrics: the per-visitor standard "
                                                                       "deviation; default: as observed")] | None = None
    control: Name | None = None
    weights: Weights | None = None


class PlanIn(Body):
    metric: Key = DEFAULT_METRIC
    mde: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    power: Annotated[float, Field(gt=0, lt=1)] = 0.8
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05


class Plan(BaseModel):
    experiment: str
    metric: str
    kind: MetricKind
    mde: float
    power: float
    alpha: float
    baseline: float | None  # the control's rate (conversion) or mean per visitor
    std: float | None  # mean metrics: the per-visitor standard deviation used
    per_variant: int | None  # visitors needed in each variant; None without a baseline
    variants: int
    total: int | None
    daily_visitors: float | None  # exposed visitors a day over the last 14 days
    daily_source: Literal["experiment", "site"] | None  # whose traffic: the site's without the experiment's
    expected_days: float | None
    saved: bool  # a plan saved for this metric makes its readouts group-sequential
    saved_per_variant: int | None

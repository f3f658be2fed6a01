"""The event schema shared by the landing page (producer) and metrics_service (store)."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from core.experiments import DEFAULT_EXPERIMENT
from core.keys import Key
from core.validation import Body, field_errors

# The built-in event types. The position is the type's bit in stored aggregate masks: append, never
# reorder. Admins register more (metrics_service's /event-types); those share CUSTOM_BIT in the masks.
EVENT_TYPES = ("page_view", "cta_click", "form_submit")
EVENT_BITS = {event_type: 1 << position for position, event_type in enumerate(EVENT_TYPES)}
CUSTOM_BIT = 1 << 7  # "some registered (non-built-in) event type" in a visitor's mask
EventTypeKey = Key  # a built-in or registered event type; which are registered, metrics_service knows
EXPOSURE = "page_view"  # the event that puts a visitor in an experiment's results
METRICS = tuple(t for t in EVENT_TYPES if t != EXPOSURE)  # the conversions an experiment is judged on
Metric = Literal[METRICS]  # type: ignore[valid-type]
DEFAULT_METRIC = "form_submit"
METRIC_NAMES = {"cta_click": "Clicked the call to action", "form_submit": "Signed up"}  # the built-in conversions
# Events reported by the page's script (landing's /track): cta_click and registered types, never the
# events the server records itself.
SERVER_RECORDED = (EXPOSURE, "form_submit")


def event_bit(event_type: str) -> int:
    """The type's bit in a visitor's mask: its own for a built-in type, CUSTOM_BIT for a registered one."""
    return EVENT_BITS.get(event_type, CUSTOM_BIT)

MAX_VISITOR_ID = 128
MAX_PROPERTIES_BYTES = 2048
MAX_PROPERTIES_DEPTH = 3
MAX_BATCH = 1000
MAX_FUTURE = timedelta(minutes=5)
MAX_PAST = timedelta(days=365)
# Fixed for good: the ids of the events of one action in several experiments are derived from it.
EXPERIMENT_EVENT_NAMESPACE = uuid.UUID("3d0f6c52-97a1-5b8e-a4c6-2f1e7b9d0c83")


def experiment_event_id(base_event_id: str, experiment: str) -> str:
    """The id of an action's event in one experiment: the same for a retried action, so it is stored once."""
    return str(uuid.uuid5(EXPERIMENT_EVENT_NAMESPACE, f"{base_event_id}:{experiment}"))


# The visitor context an exposure carries (see landing.context.exposure_context): low-cardinality
# words only, each at most MAX_DIMENSION_VALUE characters. The order is the stored columns' order.
DIMENSIONS = ("device", "browser", "os", "utm_source", "utm_medium", "utm_campaign", "referrer_host", "path",
              "country")
Dimension = Literal[DIMENSIONS]  # type: ignore[valid-type]
MAX_DIMENSION_VALUE = 64
DimensionValue = Annotated[StrictStr, Field(min_length=1, max_length=MAX_DIMENSION_VALUE, pattern=r"^[^\x00-\x1f]+$")]


class Context(Body):
    """Where an exposed visitor came from and what they use, as the landing page derived it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: DimensionValue = None
    browser: DimensionValue = None
    os: DimensionValue = None
    utm_source: DimensionValue = None
    utm_medium: DimensionValue = None
    utm_campaign: DimensionValue = None
    referrer_host: DimensionValue = None
    path: DimensionValue = None
    country: DimensionValue = None

    def values(self) -> tuple[str | None, ...]:
        """The values in DIMENSIONS order (None: not known)."""
        return tuple(getattr(self, name) for name in DIMENSIONS)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _check_properties(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if _depth(value) > MAX_PROPERTIES_DEPTH:
        raise ValueError(f"properties may nest at most {MAX_PROPERTIES_DEPTH} levels")
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ValueError("properties may not hold NaN or Infinity") from exc
    if len(encoded.encode()) > MAX_PROPERTIES_BYTES:
        raise ValueError(f"properties may be at most {MAX_PROPERTIES_BYTES} bytes of JSON")
    return value


def _check_timestamp(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    if value > now + MAX_FUTURE:
        raise ValueError("timestamp is in the future")
    if value < now - MAX_PAST:
        raise ValueError("timestamp is more than a year in the past")
    return value.astimezone(UTC)


class Event(Body):
    """One visitor event as accepted on the wire. Optional fields are omitted, never null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    visitor_id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_VISITOR_ID)]
    variant: Key
    event_type: EventTypeKey  # a built-in type or one registered with metrics_service (which checks)
    experiment: Key = DEFAULT_EXPERIMENT
    event_id: uuid.UUID = None  # omitted: the server makes one
    timestamp: Annotated[datetime, AfterValidator(_check_timestamp)] = None  # omitted: the time received
    properties: Annotated[dict[str, Any], AfterValidator(_check_properties)] = None
    forced: bool = False  # a QA override (?force_variant=): stored, but left out of stats
    in_experiment: bool = True  # false for visitors outside the experiment's coverage: left out of stats
    bot: bool = False  # sent by a known crawler: stored, but left out of stats
    context: Context = None  # on an exposure (page_view) only: the visitor's segments (see DIMENSIONS)
    value: Annotated[float, Field(allow_inf_nan=False, strict=True)] = None  # e.g. an order's value; finite

    @model_validator(mode="after")
    def _context_on_exposure(self) -> Event:
        if self.context is not None and self.event_type != EXPOSURE:
            raise ValueError(f"context is sent with {EXPOSURE} events only")
        return self


_EVENT_LIST = TypeAdapter(list[Event])


class EventValidationError(Exception):
    """Raised with one entry per problem: {"index", "field", "message"}."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


def parse_events(payload: Any) -> list[Event]:
    """Validate one event object or a list of them; raise EventValidationError listing every problem."""
    if isinstance(payload, dict):
        payload = [payload]
    elif isinstance(payload, list):
        if not payload:
            raise EventValidationError([{"index": None, "field": None, "message": "empty batch"}])
        if len(payload) > MAX_BATCH:
            raise EventValidationError(
                [{"index": None, "field": None, "message": f"at most {MAX_BATCH} events per request"}]
            )
    else:
        raise EventValidationError(
            [{"index": None, "field": None, "message": "body must be an event object or an array of them"}]
        )
    try:
        return _EVENT_LIST.validate_python(payload)
    except ValidationError as exc:
        raise EventValidationError(field_errors(exc, with_index=True)) from exc


class EventRow(NamedTuple):
    """An event as stored: the columns of the events table, in order."""

    event_id: str
    experiment: str
    variant: str
    event_type: str
    visitor_id: str
    ts: int  # milliseconds since the epoch, UTC
    properties: str | None  # JSON
    excluded: str | None  # why the event is left out of stats; None counts
    value: float | None = None  # the event's numeric value (value metrics), when it has one


def to_row(event: Event, received_at: datetime | None = None) -> EventRow:
    """A storage row: ids filled in, time as integer milliseconds since the epoch (UTC)."""
    when = event.timestamp or received_at or datetime.now(UTC)
    return EventRow(
        str(event.event_id or uuid.uuid4()),
        event.experiment,
        event.variant,
        event.event_type,
        event.visitor_id,
        to_millis(when),
        json.dumps(event.properties, separators=(",", ":")) if event.properties else None,
        exclusion_reason(event),
        event.value,
    )


def exclusion_reason(event: Event) -> str | None:
    """Why an event is kept out of stats and results, or None when it counts."""
    if event.bot:
        return "bot"
    if event.forced:
        return "forced"
    if not event.in_experiment:
        return "not_in_experiment"
    return None


def to_millis(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def from_millis(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)

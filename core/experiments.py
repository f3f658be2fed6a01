"""An experiment's definition, the built-in one, and the one rule that turns a definition into a
visitor's assignment (pure: ab_service's /assign and the landing page both decide with `decide`).

An experiment's variants carry overrides (flag -> value: what a visitor in that variant sees instead
of the flag's value). Who can be in it follows GrowthBook's experiment rules: an optional namespace
(the visitor's namespace hash must fall in [start, end), `inNamespace`) and an optional condition
over the visitor's attributes (`evalCondition`), both evaluated by the official `growthbook` package;
then the v2 hash with the experiment's seed, weights and coverage picks the variant.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from growthbook.core import evalCondition, inNamespace

from core.bucketing import assign_variant
from core.flags import LAYOUTS

Status = Literal["draft", "running", "stopped"]
STATUSES: tuple[str, ...] = get_args(Status)
MIN_VARIANTS, MAX_VARIANTS = 2, 10
WEIGHT_TOLERANCE = 1e-6  # how far from 1 the sum of the weights may be
# Events of a visitor in no running experiment are recorded under this key (variant SITE_VARIANT), so
# site-wide stats still see every visitor; no experiment may take it.
SITE_EXPERIMENT, SITE_VARIANT = "site", "all"


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    overrides: dict[str, Any] = field(default_factory=dict)  # flag key -> the value this variant shows


@dataclass(frozen=True)
class Namespace:
    """Experiments in one namespace with disjoint [start, end) ranges never share a visitor."""

    name: str
    start: float
    end: float

    def holds(self, visitor_id: str) -> bool:
        return inNamespace(visitor_id, (self.name, self.start, self.end))

    def overlaps(self, other: Namespace) -> bool:
        """Whether some visitor can be in both: always, unless both ranges of one namespace are disjoint."""
        return self.name != other.name or (self.start < other.end and other.start < self.end)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Experiment:
    """The first variant is the control. Weights sum to 1; coverage is the share of eligible visitors in it."""

    key: str
    variants: tuple[Variant, ...]
    coverage: float = 1.0
    seed: str | None = None
    status: Status = "running"
    description: str = ""
    namespace: Namespace | None = None
    condition: dict[str, Any] | None = None  # GrowthBook condition over the visitor's attributes
    start_at: str | None = None  # ISO 8601: when the scheduler starts it (ab_service); None: not scheduled
    stop_at: str | None = None  # ISO 8601: when the scheduler stops it
    # The metrics it is judged on (keys of metrics_service's /metrics): one primary, any secondary and guardrails
    primary_metric: str | None = None
    secondary_metrics: tuple[str, ...] = ()
    guardrail_metrics: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """From the API's (or a stored row's) mapping; KeyError, TypeError or ValueError when malformed."""
        namespace = data.get("namespace")
        return cls(
            key=str(data["key"]),
            variants=tuple(Variant(str(v["name"]), float(v["weight"]), dict(v.get("overrides") or {}))
                           for v in data["variants"]),
            coverage=float(data.get("coverage", 1.0)),
            seed=data.get("seed"),
            status=data.get("status", "running"),
            description=data.get("description") or "",
            namespace=Namespace(str(namespace["name"]), float(namespace["start"]), float(namespace["end"]))
            if namespace else None,
            condition=dict(data["condition"]) if data.get("condition") else None,
            start_at=data.get("start_at"),
            stop_at=data.get("stop_at"),
            primary_metric=data.get("primary_metric"),
            secondary_metrics=tuple(data.get("secondary_metrics") or ()),
            guardrail_metrics=tuple(data.get("guardrail_metrics") or ()),
        )

    def as_dict(self) -> dict[str, Any]:
        """The wire shape (GET /experiments), also what ab_service stores."""
        return {
            "key": self.key,
            "description": self.description,
            "variants": [{"name": v.name, "weight": v.weight, "overrides": dict(v.overrides)} for v in self.variants],
            "coverage": self.coverage,
            "seed": self.seed,
            "status": self.status,
            "namespace": self.namespace.as_dict() if self.namespace else None,
            "condition": self.condition,
            "start_at": self.start_at,
            "stop_at": self.stop_at,
            "primary_metric": self.primary_metric,
            "secondary_metrics": list(self.secondary_metrics),
            "guardrail_metrics": list(self.guardrail_metrics),
        }

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    @property
    def hash_seed(self) -> str:
        return self.seed or self.key

    @property
    def overridden_flags(self) -> set[str]:
        """Every flag some variant overrides."""
        return {key for variant in self.variants for key in variant.overrides}

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def eligible(self, attributes: Mapping[str, Any]) -> bool:
        """GrowthBook's namespace and condition checks, for a visitor not yet in the experiment."""
        if self.namespace and not self.namespace.holds(str(attributes["id"])):
            return False
        return not self.condition or evalCondition(dict(attributes), self.condition)

    def can_share_visitors(self, other: Experiment) -> bool:
        """Whether some visitor can be in both (conditions are not analysed: assumed to overlap)."""
        return not (self.namespace and other.namespace) or self.namespace.overlaps(other.namespace)


@dataclass(frozen=True)
class Assignment:
    variant: str
    in_experiment: bool
    new: bool = False  # decided by the hash just now (to be stored), not remembered


def decide(experiment: Experiment, attributes: Mapping[str, Any], stored: str | None = None) -> Assignment:
    """The variant a visitor (attributes: `id` and what else is known of them) sees, given the
    experiment's status and the variant remembered for them.

    running: a remembered variant of the experiment wins (sticky across weight, namespace or condition
             changes); otherwise a visitor outside the namespace or the condition is not in it, and for
             the rest the GrowthBook v2 hash of (seed or key, id) decides; visitors outside coverage see
             the control without being stored, so raising coverage later only adds visitors.
    stopped: everyone sees the control; stored assignments are kept for the record.
    draft:   no one is assigned.
    """
    control = experiment.variants[0].name
    if experiment.status != "running":
        return Assignment(control, False)
    if stored is not None and stored in experiment.variant_names:
        return Assignment(stored, True)
    if not experiment.eligible(attributes):
        return Assignment(control, False)
    variant = assign_variant(str(attributes["id"]), experiment.variant_names, experiment.weights,
                             experiment.coverage, experiment.hash_seed)
    if variant is None:
        return Assignment(control, False)
    return Assignment(variant, True, True)


def conflicts(experiment: Experiment, others: Iterable[Experiment]) -> list[tuple[str, str]]:
    """(other experiment, flag) for each flag the experiment overrides that another running experiment,
    able to share visitors with it, overrides too: the two could not both decide that flag."""
    found = []
    for other in sorted(others, key=lambda e: e.key):
        if other.key == experiment.key or other.status != "running" or not experiment.can_share_visitors(other):
            continue
        found += [(other.key, flag) for flag in sorted(experiment.overridden_flags & other.overridden_flags)]
    return found


DEFAULT_EXPERIMENT = "landing"
# Every installation starts with it (ab_service's seed data), and the landing page uses it before
# ab_service has ever answered. A: the page as the flags' values make it (centered); B: the split page.
LANDING_EXPERIMENT = Experiment(
    key=DEFAULT_EXPERIMENT,
    description="Landing page headline and layout",
    variants=(
        Variant("A", 0.5),
        Variant("B", 0.5, {
            "layout": LAYOUTS[1],
            "hero_headline": "Know what works before you scale it",
            "hero_lede": "Run A/B tests on your landing page, self-hosted, with results you can trust.",
        }),
    ),
)

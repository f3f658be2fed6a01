"""An experiment's definition, the built-in one, and the one rule that turns a definition into a
visitor's assignment (pure: ab_service stores what it decides, the landing page decides the same
when ab_service does not answer)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from core.bucketing import assign_variant

Status = Literal["draft", "running", "stopped"]
STATUSES: tuple[str, ...] = get_args(Status)
MIN_VARIANTS, MAX_VARIANTS = 2, 10
WEIGHT_TOLERANCE = 1e-6  # how far from 1 the sum of the weights may be


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float


@dataclass(frozen=True)
class Experiment:
    """The first variant is the control. Weights sum to 1; coverage is the share of visitors in it."""

    key: str
    variants: tuple[Variant, ...]
    coverage: float = 1.0
    seed: str | None = None
    status: Status = "running"
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """From the API's (or a stored row's) mapping; KeyError, TypeError or ValueError when malformed."""
        return cls(
            key=str(data["key"]),
            variants=tuple(Variant(str(v["name"]), float(v["weight"])) for v in data["variants"]),
            coverage=float(data.get("coverage", 1.0)),
            seed=data.get("seed"),
            status=data.get("status", "running"),
            description=data.get("description") or "",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "description": self.description,
            "variants": [{"name": v.name, "weight": v.weight} for v in self.variants],
            "coverage": self.coverage,
            "seed": self.seed,
            "status": self.status,
        }

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]


@dataclass(frozen=True)
class Assignment:
    variant: str
    in_experiment: bool
    new: bool = False  # decided by the hash just now (ab_service stores it), not remembered


def decide(experiment: Experiment, visitor_id: str, stored: str | None = None) -> Assignment:
    """The variant a visitor sees, given the experiment's status and the variant stored for them.

    running: a stored assignment wins (sticky across weight changes); otherwise the GrowthBook v2
             hash of (seed or key, visitor id) decides, and visitors outside coverage see the
             control without being stored, so raising coverage later only adds visitors.
    stopped: everyone sees the control; stored assignments are kept for the record.
    draft:   no one is assigned.
    """
    control = experiment.variants[0].name
    if experiment.status != "running":
        return Assignment(control, False, False)
    if stored is not None:
        return Assignment(stored, True, False)
    variant = assign_variant(visitor_id, experiment.variant_names, [v.weight for v in experiment.variants],
                             experiment.coverage, experiment.seed or experiment.key)
    if variant is None:
        return Assignment(control, False, False)
    return Assignment(variant, True, True)


DEFAULT_EXPERIMENT = "landing"
# Every installation starts with it (ab_service's seed data), and the landing page uses it before
# ab_service has ever answered.
LANDING_EXPERIMENT = Experiment(
    key=DEFAULT_EXPERIMENT,
    description="Landing page headline and layout",
    variants=(Variant("A", 0.5), Variant("B", 0.5)),
)

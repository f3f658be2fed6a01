"""Request bodies of ab_service's admin API and the rules they must follow (pydantic, no I/O)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from core.experiments import MAX_VARIANTS, MIN_VARIANTS, WEIGHT_TOLERANCE, Status
from core.flags import FLAG_TYPES, value_problem
from core.keys import Key

# Which status an experiment may move to from each status (staying put is always allowed).
TRANSITIONS: dict[str, set[str]] = {
    "draft": {"running", "stopped"},
    "running": {"stopped"},
    "stopped": {"running"},
}


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Key
    weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def check_variants(variants: list[Variant] | None) -> list[Variant] | None:
    if variants is None:
        return None
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate variant names: {', '.join(duplicates)}")
    total = sum(v.weight for v in variants)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"variant weights must sum to 1 (they sum to {total:g})")
    return variants


Variants = Annotated[list[Variant], Field(min_length=MIN_VARIANTS, max_length=MAX_VARIANTS),
                     AfterValidator(check_variants)]
Coverage = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Seed = Annotated[StrictStr, Field(min_length=1, max_length=128)]
Description = Annotated[StrictStr, Field(max_length=500)]


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Key
    description: Description = ""
    variants: Variants
    coverage: Coverage = 1.0
    seed: Seed | None = None
    status: Status = "draft"


class ExperimentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Description | None = None
    variants: Variants | None = None
    coverage: Coverage | None = None
    seed: Seed | None = None
    status: Status | None = None


def patch_problems(current: dict[str, Any], patch: ExperimentPatch) -> list[dict[str, str]]:
    """Rules that depend on the experiment's current state."""
    problems = []
    if patch.status and patch.status != current["status"] and patch.status not in TRANSITIONS[current["status"]]:
        problems.append({"field": "status",
                         "message": f"cannot change status from {current['status']} to {patch.status}"})
    if current["status"] != "draft":
        if patch.variants is not None and [v.name for v in patch.variants] != [v["name"] for v in current["variants"]]:
            problems.append({"field": "variants",
                             "message": "variant names are fixed once an experiment has started; only weights change"})
        if patch.seed is not None and patch.seed != current["seed"]:
            problems.append({"field": "seed", "message": "the seed is fixed once an experiment has started"})
    return problems


class FlagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Key
    type: Literal[FLAG_TYPES]  # type: ignore[valid-type]
    value: Any
    off_value: Any = None
    rollout: Coverage = 1.0
    description: Description = ""


class FlagPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any = None
    off_value: Any = None
    rollout: Coverage | None = None
    description: Description | None = None


def flag_value_problems(kind: str, values: dict[str, Any]) -> list[dict[str, str]]:
    """Typed checks of a flag's value and off_value (those present in values)."""
    problems = []
    for name in ("value", "off_value"):
        if name in values and values[name] is not None:
            problem = value_problem(kind, values[name])
            if problem:
                problems.append({"field": name, "message": problem})
    return problems

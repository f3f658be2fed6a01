"""ab_service's records (what is stored and answered) and the request bodies that change them: the
rules they must follow, as pydantic models (no I/O).

A request body (core.validation.Body) refuses unknown fields and explicit nulls. The store writes
nothing that does not fit its record model, and reads every row through it.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationInfo,
    field_validator,
)

from core.experiments import MAX_VARIANTS, MIN_VARIANTS, WEIGHT_TOLERANCE, Status
from core.flags import FLAG_TYPES, value_problem
from core.keys import Key
from core.validation import Body

# Which status an experiment may move to from each status (staying put is always allowed).
TRANSITIONS: dict[str, set[str]] = {
    "draft": {"running", "stopped"},
    "running": {"stopped"},
    "stopped": {"running"},
}


class Variant(Body):
    name: Key
    weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def check_variants(variants: list[Variant]) -> list[Variant]:
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


class ExperimentIn(Body):
    key: Key
    description: Description = ""
    variants: Variants
    coverage: Coverage = 1.0
    seed: Seed = None  # omitted: the key is the seed
    status: Status = "draft"


class ExperimentPatch(Body):
    description: Description = None
    variants: Variants = None
    coverage: Coverage = None
    seed: Seed = None
    status: Status = None


def patch_problems(current: dict[str, Any], patch: ExperimentPatch) -> list[dict[str, str]]:
    """Rules that depend on the experiment's current state. current is the stored row as it is, which
    may not fit the record (a row written by hand or by an old version): a rule is checked against
    what can be read, so a PATCH can still repair the rest."""
    problems = []
    status = current.get("status")
    if patch.status and status in TRANSITIONS and patch.status != status and patch.status not in TRANSITIONS[status]:
        problems.append({"field": "status", "message": f"cannot change status from {status} to {patch.status}"})
    if status != "draft":
        names = stored_variant_names(current.get("variants"))
        if patch.variants is not None and names is not None and [v.name for v in patch.variants] != names:
            problems.append({"field": "variants",
                             "message": "variant names are fixed once an experiment has started; only weights change"})
        if patch.seed is not None and patch.seed != current.get("seed"):
            problems.append({"field": "seed", "message": "the seed is fixed once an experiment has started"})
    return problems


def stored_variant_names(variants: Any) -> list[str] | None:
    """The variant names of a stored row, or None when its variants cannot be read."""
    if not isinstance(variants, list) or not all(isinstance(v, dict) and "name" in v for v in variants):
        return None
    return [v["name"] for v in variants]


def fits_flag_type(value: Any, info: ValidationInfo, allow_empty: bool = False) -> Any:
    """A value or off_value must fit the flag's type (checked once the type itself is valid)."""
    kind = info.data.get("type")
    problem = value_problem(kind, value, allow_empty) if kind else None
    if problem:
        raise ValueError(problem)
    return value


class FlagRecord(BaseModel):
    """A flag as stored and answered: visitors inside the rollout see value, the rest off_value."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: Key
    type: Literal[FLAG_TYPES]  # type: ignore[valid-type]
    value: Any
    off_value: Any
    rollout: Coverage
    description: Description

    @field_validator("value", "off_value")
    @classmethod
    def _fits_type(cls, value: Any, info: ValidationInfo) -> Any:
        return fits_flag_type(value, info, allow_empty=True)


class FlagIn(Body):
    key: Key
    type: Literal[FLAG_TYPES]  # type: ignore[valid-type]
    value: Any
    off_value: Any = None  # omitted: false for a boolean, else the value
    rollout: Coverage = 1.0
    description: Description = ""

    @field_validator("value", "off_value")
    @classmethod
    def _fits_type(cls, value: Any, info: ValidationInfo) -> Any:
        return fits_flag_type(value, info)


class FlagPatch(Body):
    value: Any = None
    off_value: Any = None
    rollout: Coverage = None
    description: Description = None

"""What one visitor sees: every running experiment they are eligible for, and the flag values that follow.

Pure functions over the wire shapes of flags and experiments (plain dicts, as ab_service serves them),
so ab_service (`/assign`) and the landing page (in process) decide alike, and `features_payload`
describes the same decisions to any GrowthBook SDK:

- an experiment is a GrowthBook experiment rule on each flag it overrides, with `hashAttribute: "id"`,
  `hashVersion: 2`, its seed (or key), weights, coverage, namespace and condition;
- a flag rolled out to a share of visitors is a force rule with that coverage, seeded with the flag key.

Namespaces and conditions are evaluated by the official `growthbook` package itself.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from growthbook.core import evalCondition, inNamespace

from core.experiments import Assignment, decide
from core.experiments import Experiment as Definition
from core.flags import resolve

Flag = Mapping[str, Any]
Experiment = Mapping[str, Any]


@dataclass(frozen=True)
class Evaluation:
    values: dict[str, Any]
    assignments: dict[str, Assignment] = field(default_factory=dict)

    @property
    def exposures(self) -> dict[str, str]:
        """{experiment: variant} for every experiment the visitor is in."""
        return {key: a.variant for key, a in self.assignments.items() if a.in_experiment}


def variant_names(experiment: Experiment) -> list[str]:
    return [v["name"] for v in experiment["variants"]]


def overridden_flags(experiment: Experiment) -> set[str]:
    """Every flag any variant of the experiment overrides."""
    return {key for variant in experiment["variants"] for key in (variant.get("overrides") or {})}


def namespace_tuple(experiment: Experiment) -> tuple[str, float, float] | None:
    namespace = experiment.get("namespace")
    if not namespace:
        return None
    return namespace["name"], float(namespace["start"]), float(namespace["end"])


def eligible(experiment: Experiment, attributes: Mapping[str, Any]) -> bool:
    """GrowthBook's namespace and condition checks for a visitor not yet in the experiment."""
    namespace = namespace_tuple(experiment)
    if namespace and not inNamespace(str(attributes["id"]), namespace):
        return False
    condition = experiment.get("condition")
    return not condition or evalCondition(dict(attributes), dict(condition))


def assign(experiment: Experiment, attributes: Mapping[str, Any], sticky: str | None = None) -> Assignment:
    """The visitor's variant in one experiment: a remembered variant wins while the experiment runs;
    otherwise an eligible visitor is hashed into a variant (or left out by coverage)."""
    names = variant_names(experiment)
    running = experiment["status"] == "running"
    if running and sticky not in names:
        sticky = None
    if running and sticky is None and not eligible(experiment, attributes):
        return Assignment(names[0], False)
    return decide(Definition.from_dict(experiment), str(attributes["id"]), sticky)


def evaluate(flags: Iterable[Flag], experiments: Iterable[Experiment], attributes: Mapping[str, Any],
             sticky: Mapping[str, str] | None = None) -> Evaluation:
    """Flag values for one visitor, with the overrides of every experiment they are in.

    Experiments are taken in key order, as their rules stand in `features_payload`: when two could
    set the same flag (only possible for traffic that cannot overlap), the first one the visitor is in
    decides it. In an experiment that overrides a flag, a variant without its own value shows the
    flag's `value` (a GrowthBook experiment rule carries a value for every variation).
    """
    sticky = sticky or {}
    by_key = {flag["key"]: flag for flag in flags}
    values = {key: resolve(flag, str(attributes["id"])) for key, flag in by_key.items()}
    decided: set[str] = set()
    assignments: dict[str, Assignment] = {}
    for experiment in sorted(experiments, key=lambda e: e["key"]):
        if experiment["status"] == "draft":
            continue
        assignment = assign(experiment, attributes, sticky.get(experiment["key"]))
        assignments[experiment["key"]] = assignment
        if not assignment.in_experiment:
            continue
        variant = next(v for v in experiment["variants"] if v["name"] == assignment.variant)
        overrides = variant.get("overrides") or {}
        for key in sorted(overridden_flags(experiment) - decided):
            if key in by_key:
                values[key] = overrides.get(key, by_key[key]["value"])
                decided.add(key)
    return Evaluation(values, assignments)


def experiment_rule(experiment: Experiment, flag: Flag) -> dict[str, Any]:
    """The GrowthBook experiment rule that serves one experiment's values of one flag."""
    rule: dict[str, Any] = {
        "key": experiment["key"],
        "variations": [(v.get("overrides") or {}).get(flag["key"], flag["value"]) for v in experiment["variants"]],
        "weights": [float(v["weight"]) for v in experiment["variants"]],
        "coverage": float(experiment.get("coverage", 1.0)),
        "hashAttribute": "id",
        "seed": experiment.get("seed") or experiment["key"],
        "hashVersion": 2,
        "meta": [{"key": v["name"], "name": v["name"]} for v in experiment["variants"]],
    }
    namespace = namespace_tuple(experiment)
    if namespace:
        rule["namespace"] = list(namespace)
    if experiment.get("condition"):
        rule["condition"] = dict(experiment["condition"])
    return rule


def features_payload(flags: Iterable[Flag], experiments: Iterable[Experiment]) -> dict[str, dict[str, Any]]:
    """GrowthBook's `features` object: one feature per flag, an experiment rule per running experiment
    that overrides it (in key order), then a force rule for a partial rollout."""
    running = sorted((e for e in experiments if e["status"] == "running"), key=lambda e: e["key"])
    features: dict[str, dict[str, Any]] = {}
    for flag in flags:
        rollout = float(flag.get("rollout", 1.0))
        rules = [experiment_rule(e, flag) for e in running if flag["key"] in overridden_flags(e)]
        if rollout < 1:
            rules.append({"force": flag["value"], "coverage": rollout, "hashAttribute": "id",
                          "seed": flag["key"], "hashVersion": 2})
        features[flag["key"]] = {"defaultValue": flag.get("off_value", flag["value"]) if rollout < 1
                                 else flag["value"], "rules": rules}
    return features

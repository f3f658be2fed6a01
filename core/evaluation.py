"""What one visitor sees: every running experiment they are in, and the flag values that follow.

Pure functions over flags (the wire dicts of GET /flags) and experiments (the wire dicts of
GET /experiments, or `core.experiments.Experiment`), so ab_service and the landing page decide alike,
each experiment with `core.experiments.decide`; `features_payload` describes the same decisions to
any GrowthBook SDK:

- an experiment is a GrowthBook experiment rule on each flag it overrides, with `hashAttribute: "id"`,
  `hashVersion: 2`, its seed (or key), weights, coverage, namespace and condition;
- a flag rolled out to a share of visitors is a force rule with that coverage, seeded with the flag key.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.experiments import Assignment, Experiment, decide
from core.flags import resolve

Flag = Mapping[str, Any]


@dataclass(frozen=True)
class Evaluation:
    values: dict[str, Any]  # flag key -> the value this visitor sees
    assignments: dict[str, Assignment] = field(default_factory=dict)  # every running or stopped experiment

    @property
    def exposures(self) -> dict[str, str]:
        """{experiment: variant} for every experiment the visitor is in."""
        return {key: a.variant for key, a in self.assignments.items() if a.in_experiment}

    @property
    def new(self) -> dict[str, str]:
        """{experiment: variant} assigned by the hash just now: to be remembered."""
        return {key: a.variant for key, a in self.assignments.items() if a.new}


def definition(experiment: Experiment | Mapping[str, Any]) -> Experiment:
    """An experiment as a definition, from the wire shape when needed."""
    return experiment if isinstance(experiment, Experiment) else Experiment.from_dict(experiment)


def definitions(experiments: Iterable[Experiment | Mapping[str, Any]]) -> list[Experiment]:
    """Experiments as definitions, in key order (the order of their rules in `features_payload`)."""
    return sorted((definition(e) for e in experiments), key=lambda e: e.key)


def variant_names(experiment: Experiment | Mapping[str, Any]) -> list[str]:
    return definition(experiment).variant_names


def overridden_flags(experiment: Experiment | Mapping[str, Any]) -> set[str]:
    """Every flag some variant of the experiment overrides."""
    return definition(experiment).overridden_flags


def evaluate(flags: Iterable[Flag], experiments: Iterable[Experiment | Mapping[str, Any]],
             attributes: Mapping[str, Any], sticky: Mapping[str, str] | None = None) -> Evaluation:
    """Flag values for one visitor (attributes: `id` and the rest), with the overrides of every
    experiment they are in; sticky: {experiment: variant} remembered for them.

    Experiments are taken in key order, as their rules stand in `features_payload`: when two could set
    the same flag (only possible for traffic that cannot overlap), the first one the visitor is in
    decides it. In an experiment that overrides a flag, a variant without its own value shows the
    flag's `value` (a GrowthBook experiment rule carries a value for every variation).
    """
    sticky = sticky or {}
    by_key = {flag["key"]: flag for flag in flags}
    values = {key: resolve(flag, str(attributes["id"])) for key, flag in by_key.items()}
    decided: set[str] = set()
    assignments: dict[str, Assignment] = {}
    for experiment in definitions(experiments):
        if experiment.status == "draft":
            continue
        assignment = decide(experiment, attributes, sticky.get(experiment.key))
        assignments[experiment.key] = assignment
        if not assignment.in_experiment:
            continue
        overrides = experiment.variant(assignment.variant).overrides
        for key in sorted(experiment.overridden_flags - decided):
            if key in by_key:
                values[key] = overrides.get(key, by_key[key]["value"])
                decided.add(key)
    return Evaluation(values, assignments)


def experiment_rule(experiment: Experiment, flag: Flag) -> dict[str, Any]:
    """The GrowthBook experiment rule that serves one experiment's values of one flag."""
    rule: dict[str, Any] = {
        "key": experiment.key,
        "variations": [v.overrides.get(flag["key"], flag["value"]) for v in experiment.variants],
        "weights": experiment.weights,
        "coverage": experiment.coverage,
        "hashAttribute": "id",
        "seed": experiment.hash_seed,
        "hashVersion": 2,
        "meta": [{"key": v.name, "name": v.name} for v in experiment.variants],
    }
    if experiment.namespace:
        rule["namespace"] = [experiment.namespace.name, experiment.namespace.start, experiment.namespace.end]
    if experiment.condition:
        rule["condition"] = experiment.condition
    return rule


def features_payload(flags: Iterable[Flag], experiments: Iterable[Experiment | Mapping[str, Any]]
                     ) -> dict[str, dict[str, Any]]:
    """GrowthBook's `features` object: one feature per flag, an experiment rule per running experiment
    that overrides it (in key order), then a force rule for a partial rollout."""
    running = [e for e in definitions(experiments) if e.status == "running"]
    features: dict[str, dict[str, Any]] = {}
    for flag in flags:
        rollout = float(flag.get("rollout", 1.0))
        rules = [experiment_rule(e, flag) for e in running if flag["key"] in e.overridden_flags]
        if rollout < 1:
            rules.append({"force": flag["value"], "coverage": rollout, "hashAttribute": "id",
                          "seed": flag["key"], "hashVersion": 2})
        features[flag["key"]] = {"defaultValue": flag.get("off_value", flag["value"]) if rollout < 1
                                 else flag["value"], "rules": rules}
    return features

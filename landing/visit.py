"""What one request of a visitor sees and records, decided in process (pure: no Flask, no I/O).

The page evaluates every experiment with core.evaluation: the visitor's remembered assignments (the
signed cookie) win while an experiment runs; anyone else eligible is hashed into a variant. Events are
recorded once per running experiment the visitor is in, under the reserved experiment `site` when
they are in none. A QA preview (`?force_variant=experiment:variant,...`) shows those variants for
one request, records its events as forced and remembers nothing.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.evaluation import evaluate
from core.experiments import DEFAULT_EXPERIMENT, SITE_EXPERIMENT, SITE_VARIANT
from core.keys import KEY_PATTERN
from landing.definitions import Definitions

MAX_FORCED = 10
_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class Visit:
    values: dict[str, Any]  # flag values to render
    exposures: dict[str, str]  # {experiment: variant} for every running experiment the visitor is in
    new: dict[str, str] = field(default_factory=dict)  # assignments the hash made now, for ab_service to store
    remembered: dict[str, str] = field(default_factory=dict)  # what the cookie holds after this view
    forced: dict[str, str] = field(default_factory=dict)  # a QA preview's {experiment: variant}

    @property
    def recorded_under(self) -> dict[str, str]:
        """{experiment: variant} this request's events are recorded under."""
        return record_under(self.forced or self.exposures)


def record_under(experiments: Mapping[str, str]) -> dict[str, str]:
    """One event per experiment; a visitor in none is recorded once under the reserved `site`."""
    return dict(experiments) or {SITE_EXPERIMENT: SITE_VARIANT}


def parse_forced(spec: Any, definitions: Definitions) -> dict[str, str]:
    """{experiment: variant} of a QA preview: "hero:C,landing:B"; a bare "B" means the `landing`
    experiment. Entries naming an unknown experiment or variant are ignored."""
    if not isinstance(spec, str) or not spec or len(spec) > 1000:
        return {}
    experiments = definitions.experiment_keys
    forced: dict[str, str] = {}
    for entry in spec.split(",")[:MAX_FORCED]:
        key, _, variant = entry.strip().rpartition(":")
        key = key or DEFAULT_EXPERIMENT
        if _KEY.match(key) and key in experiments and variant in experiments[key].variant_names:
            forced[key] = variant
    return forced


def forced_spec(forced: Mapping[str, str]) -> str:
    """The preview in the form the page's script sends back (`forced_variant`)."""
    return ",".join(f"{key}:{variant}" for key, variant in sorted(forced.items()))


def remembered(definitions: Definitions, cookie: Mapping[str, str]) -> dict[str, str]:
    """The cookie's assignments to variants that still exist. While only core's seed data is known
    (ab_service has never answered), assignments to experiments it does not list are kept."""
    experiments = definitions.experiment_keys
    return {key: variant for key, variant in cookie.items()
            if (key in experiments and variant in experiments[key].variant_names)
            or (key not in experiments and not definitions.known)}


def page(definitions: Definitions, attributes: Mapping[str, Any], cookie: Mapping[str, str],
         forced: Mapping[str, str] | None = None) -> Visit:
    """What the visitor sees, what is recorded and what is remembered on one view of the page."""
    kept = remembered(definitions, cookie)
    evaluation = evaluate(definitions.flags, definitions.experiments, attributes, kept)
    exposures = evaluation.exposures
    if forced:
        return Visit(_with_forced(definitions, evaluation.values, forced), exposures, forced=dict(forced))
    return Visit(evaluation.values, exposures, evaluation.new, {**kept, **exposures})


def _with_forced(definitions: Definitions, values: Mapping[str, Any], forced: Mapping[str, str]) -> dict[str, Any]:
    """The values with each previewed variant's overrides on top (a variant without its own value of a
    flag its experiment overrides shows the flag's value, as in evaluation)."""
    flags = {flag["key"]: flag for flag in definitions.flags}
    experiments = definitions.experiment_keys
    shown = dict(values)
    for key, name in sorted(forced.items()):
        experiment = experiments[key]
        overrides = experiment.variant(name).overrides
        for flag in experiment.overridden_flags & flags.keys():
            shown[flag] = overrides.get(flag, flags[flag]["value"])
    return shown


def converted(definitions: Definitions, cookie: Mapping[str, str]) -> dict[str, str]:
    """The running experiments a visitor converting now was exposed to: their remembered variants."""
    experiments = definitions.experiment_keys
    return {key: variant for key, variant in remembered(definitions, cookie).items()
            if key in experiments and experiments[key].status == "running"}

"""The benchmark's arithmetic and settings, without servers."""
from __future__ import annotations

import pytest

from bench.settings import DEFAULT_SIZES, Settings
from bench.wrk import SATURATED, Figure, Round, parse, ratio


def round_(requests=1000, seconds=1.0, generator_cpu=0.1, non_2xx=0, threads=1) -> Round:
    return Round(requests=requests, seconds=seconds, non_2xx=non_2xx, socket_errors=0, p50_ms=2.0, p99_ms=9.0,
                 threads=threads, wall=seconds, generator_cpu=generator_cpu, server_cpu=1.5)


def test_rates_add_up_over_rounds_and_ratios_compare_them():
    figure = Figure("f", (round_(1000, 1.0), round_(3000, 3.0)))
    ceiling = Figure("c", (round_(4000, 1.0),))
    assert figure.rate == 1000
    assert ratio(figure, ceiling) == 0.25
    assert Figure("batch", (round_(10, 1.0),), items_per_request=500).rate == 5000


def test_the_time_a_server_takes_to_settle_after_a_round_counts_in_its_rate():
    """metrics_service folds queued events after answering: the time its readout takes to settle
    after each round is part of the figure's time, so work left behind does not flatter the rate."""
    from dataclasses import replace

    settled = Figure("f", (replace(round_(1000, 1.0), settle_seconds=1.0), round_(1000, 1.0)))
    assert settled.rate == pytest.approx(2000 / 3)
    assert settled.settle_seconds == 1.0


def test_a_saturated_generator_or_a_failed_request_withholds_the_ratio():
    ceiling = Figure("c", (round_(4000),))
    busy = Figure("f", (round_(), round_(generator_cpu=SATURATED + 0.05)))
    assert busy.saturated
    assert ratio(busy, ceiling) is None
    assert ratio(ceiling, busy) is None
    two_threads = Figure("f", (round_(generator_cpu=1.5, threads=2),))  # 75% of two threads' time
    assert not two_threads.saturated
    assert ratio(Figure("f", (round_(non_2xx=1),)), ceiling) is None


def test_the_scripts_json_line_is_found_among_wrks_output():
    output = "Running 1s test\n  1 threads\nBENCH_JSON {\"requests\": 5, \"p99_us\": 900}\nRequests/sec: 5\n"
    assert parse(output) == {"requests": 5, "p99_us": 900}
    with pytest.raises(RuntimeError, match="no BENCH_JSON"):
        parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_settings_come_from_bench_variables_with_defaults():
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({}).sizes == DEFAULT_SIZES
    settings = Settings.from_env({"BENCH_SECONDS": "7", "BENCH_SIZES": "1000,2000", "BENCH_VISITORS": "1000000",
                                  "BENCH_DATABASE_URL": "postgresql+psycopg://x@y/z", "BENCH_THREADS": ""})
    assert (settings.seconds, settings.sizes, settings.visitors, settings.threads) == (7, (1000, 2000), 1_000_000, 1)
    assert settings.database_url == "postgresql+psycopg://x@y/z"


def test_scaling_and_the_page_share_of_the_memory_figure_are_opt_in_settings():
    assert not Settings().scaling
    assert Settings().page_visitors == 100_000
    settings = Settings.from_env({"BENCH_SCALING": "1", "BENCH_PAGE_VISITORS": "5000"})
    assert settings.scaling and settings.page_visitors == 5000
    assert not Settings.from_env({"BENCH_SCALING": "0"}).scaling


def test_scaling_rows_compare_each_configuration_with_one_instance():
    from bench.report import scaling_rows
    from bench.scaling import Scaling

    figures = {"page 1": Figure("page 1", (round_(400),)), "page 2": Figure("page 2", (round_(700),)),
               "ingest 1": Figure("ingest 1", (round_(1000),)), "ingest 2": Figure("ingest 2", (round_(1900),))}
    one, two = scaling_rows(Scaling(figures, 11.0, 5000, 0.5, 1900.0))
    assert (one[0], one[3], one[4]) == ("1", "1.00", "1.00")
    assert (two[0], two[3], two[4]) == ("2", "1.75", "1.90")
    figures["ingest 2"] = Figure("ingest 2", (round_(1900, non_2xx=3),))
    assert scaling_rows(Scaling(figures, 11.0, 5000, 0.5, 1900.0))[1][3:5] == ("–", "–")


def test_bench_only_runs_the_groups_named():
    assert Settings().runs("page") and Settings().runs("stats")
    settings = Settings.from_env({"BENCH_ONLY": "page, scaling"})
    assert settings.only == ("page", "scaling")
    assert settings.runs("page") and not settings.runs("stats")
    with pytest.raises(ValueError, match="BENCH_ONLY"):
        Settings.from_env({"BENCH_ONLY": "pages"})

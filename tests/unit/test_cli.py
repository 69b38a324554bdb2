"""The command line: `scv config` (the generated reference stays in sync, secrets never reach
the output), argument checks of `scv replay`, `scv topics strimzi`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scv.cli import config_markdown, main
from scv.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[2]
CONFIG_DOC = REPO / "docs" / "configuration.md"


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """``get_settings()`` is cached per process; re-read the environment around a test."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_configuration_doc_is_generated_from_settings() -> None:
    assert CONFIG_DOC.read_text() == config_markdown(), (
        "docs/configuration.md is stale: run `.venv/bin/scv config --markdown > "
        "docs/configuration.md`"
    )


def test_markdown_lists_every_setting_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out == config_markdown()
    rows = [line for line in out.splitlines() if line.startswith("| `SCV_")]
    assert [row.split("`")[1] for row in rows] == [
        f"SCV_{name.upper()}" for name in Settings.model_fields
    ]
    assert "| `SCV_WEB_PORT` | `6066` |" in out


def test_markdown_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    expected = config_markdown()
    monkeypatch.setenv("SCV_WEB_PORT", "7777")
    monkeypatch.setenv("SCV_BOOTSTRAP_SERVERS", "kafka.internal:9093")
    assert config_markdown() == expected


def test_config_masks_the_sasl_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_settings: None
) -> None:
    secret = "s3cr3t-Passw0rd-do-not-print"
    monkeypatch.setenv("SCV_SASL_USERNAME", "svc-scv")
    monkeypatch.setenv("SCV_SASL_PASSWORD", secret)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert secret not in out
    password_line = next(line for line in out.splitlines() if "SCV_SASL_PASSWORD" in line)
    assert "********" in password_line
    assert "svc-scv" in out  # the environment was read: only the secret is hidden


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SCV_CHURN_VISIT_TYPES": "page_view,basket"}, "SCV_CHURN_VISIT_TYPES='page_view,basket'"),
        ({"SCV_CHURN_VISIT_TYPES": "page_view,,login"}, "SCV_CHURN_VISIT_TYPES="),
        ({"SCV_CHURN_VISIT_MAX_LAG_S": "-1"}, "SCV_CHURN_VISIT_MAX_LAG_S='-1'"),
        ({"SCV_CHURN_VISIT_MAX_LAG_S": "60"}, "SCV_CHURN_VISIT_MAX_LAG_S must be 0 or at least"),
        ({"SCV_CHURN_VISIT_GRACE_S": "soon"}, "SCV_CHURN_VISIT_GRACE_S='soon'"),
        ({"SCV_CHURN_MAX_AGE_S": "-5"}, "SCV_CHURN_MAX_AGE_S='-5'"),
        ({"SCV_CART_MAX_LAG_S": "600"}, "SCV_CART_MAX_LAG_S must be 0 or above SCV_CART_WINDOW_S"),
        ({"SCV_ACTION_COOLDOWN_S": "-1"}, "SCV_ACTION_COOLDOWN_S='-1'"),
        ({"SCV_BATCH_MAX": "0"}, "SCV_BATCH_MAX='0'"),
    ],
)
def test_a_bad_setting_stops_with_one_line_naming_it(
    env: dict[str, str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fresh_settings: None,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scv config: bad setting: ")
    assert says in err


def test_action_settings_reach_the_trigger_rules() -> None:
    from scv.streams.profiles import trigger_config

    default = trigger_config(Settings())
    assert (default.cart_max_lag_s, default.churn_visit_max_lag_s) == (7 * 86400.0, 1800.0)
    assert (default.churn_visit_grace_s, default.churn_max_age_s) == (300.0, 30 * 86400.0)
    assert default.visit_types == {"page_view", "product_view", "cart_add", "login"}
    off = trigger_config(
        Settings(
            cart_max_lag_s=0,
            churn_visit_max_lag_s=0,
            churn_max_age_s=0,
            action_cooldown_s=60,
            churn_visit_types=" login , page_view",
        )
    )
    assert (off.cart_max_lag_s, off.churn_visit_max_lag_s, off.churn_max_age_s) == (None,) * 3
    assert off.cooldown_s == 60 and off.visit_types == {"login", "page_view"}


@pytest.mark.parametrize(
    "args", [["--topic", "raw.web.v1"], ["--topic", "raw.web.v1", "--watch", "d", "f.jsonl"]]
)
def test_replay_wants_files_or_a_folder(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", *args]) == 2
    assert "give FILE... or --watch DIR" in capsys.readouterr().err


def test_topics_strimzi_prints_the_resources_for_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_settings: None
) -> None:
    import yaml

    monkeypatch.setenv("SCV_STAGE_PARTITIONS", "6")
    assert main(["topics", "strimzi", "--cluster", "prod"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    profiles = next(d for d in docs if d["spec"]["topicName"] == "profiles.v1")
    assert profiles["spec"]["partitions"] == 6
    assert profiles["metadata"]["labels"]["strimzi.io/cluster"] == "prod"


def test_config_masks_every_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_settings: None
) -> None:
    secrets = {
        "SCV_SASL_PASSWORD": "sasl-secret-1",
        "SCV_SSL_KEY_PASSWORD": "key-secret-2",
        "SCV_API_TOKEN": "token-secret-3",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in secrets)
    assert [v for v in secrets.values() if v in out] == []


@pytest.mark.parametrize(
    ("argv", "module", "function", "prefix"),
    [
        (["demo", "--events", "10"], "scv.demo", "run_demo", "scv demo: "),
        (["bench", "memory"], "scv.bench.memory", "run_memory", "scv bench memory: "),
    ],
)
def test_a_drain_that_gives_up_is_one_line_on_stderr_and_exit_1(
    argv: list[str],
    module: str,
    function: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib

    from scv.drain import DrainTimeout

    message = "not drained: no progress for 60 s (after 75 s): profiles.events.v1 lag 412"

    def stuck(*args: object, **kwargs: object) -> None:
        exc = DrainTimeout(message, {"profiles.events.v1": 412})
        exc.logs = [Path("/tmp/scv-demo-x/worker0.log")]
        raise exc

    monkeypatch.setattr(importlib.import_module(module), function, stuck)
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"{prefix}{message}; worker log: /tmp/scv-demo-x/worker0.log\n"


def test_a_refused_worker_is_one_line_on_stderr_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong credentials or a missing ACL: a configuration problem, reported like a bad
    setting (tests/integration/test_kafka_security.py raises it for real)."""
    import scv.streams.worker
    from scv.kafka import KafkaRefused

    line = "user 'scv' is not authorized by Kafka at k:9093 to READ group scv"

    def refused(settings: object) -> None:
        raise KafkaRefused(line)

    monkeypatch.setattr(scv.streams.worker, "run_worker", refused)
    assert main(["worker"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"scv worker: {line}\n"


def test_demo_check_names_what_is_wrong() -> None:
    from scv.cli import demo_problems

    good = {
        "pairwise_precision": 1.0,
        "duplicate_actions": 0,
        "dlq": 200,
        "malformed_in": 200,
        "events_resolved": 19605,
        "events_in": 20000,
        "profiles": 1822,
    }
    assert demo_problems(good) == []
    bad = good | {"pairwise_precision": 0.99, "duplicate_actions": 2, "dlq": 201}
    assert demo_problems(bad) == [
        "pairwise_precision 0.99 < 1.0",
        "2 duplicate actions",
        "dlq 201 != malformed_in 200",
    ]


def test_demo_realistic_profile_with_households_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The realistic profile forms its own households: asking for more is refused before
    anything starts."""
    assert main(["demo", "--profile", "realistic", "--households", "0.3"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "--households" in captured.err

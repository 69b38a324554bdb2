"""Programme files: the shipped one loads, and each kind of mistake stops start-up with one
line naming the file, the line and what is wrong."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from scv.activation.programmes import DEFAULT_PATH, Condition, load_programmes


def test_the_built_in_programmes_load() -> None:
    rules = load_programmes()
    assert rules.names() == ["welcome", "cross_sell", "high_value_thanks"]
    assert [a.name for a in rules.audiences] == [
        "high_value",
        "registered_no_order",
        "callcentre_retention",
    ]
    assert rules.quiet_hours is not None and rules.quiet_hours.start == time(21, 0)
    assert load_programmes(DEFAULT_PATH) == rules


GOOD = """\
programmes:
  - name: welcome
    trigger: {fact: registered, subject: customer_id}
    channels: [email]
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            GOOD.replace("{fact:", "{kind: appears, fact:"),
            3,
            "programmes[0].trigger.kind: expected one of holds",
        ),
        (GOOD.replace("fact: registered", "fact: rich"), 3, "unknown fact 'rich'"),
        (GOOD.replace("[email]", "[fax]"), 4, "programmes[0].channels: expected a list of"),
        (GOOD + "    priority: high\n", 5, "programmes[0].priority: expected an integer"),
        (GOOD + "    colour: red\n", 5, "programmes[0].colour: unknown key"),
        (GOOD + "    cap: {count: 0, window_s: 60}\n", 5, "cap.count: expected an integer >= 1"),
        (
            GOOD + "    conditions:\n      - {fact: orders_total, op: '>', value: lots}\n",
            6,
            "conditions[0].value: > needs a number",
        ),
        (GOOD + GOOD.split("\n", 1)[1], 5, "programmes[1].name: 'welcome' is declared twice"),
        ("quiet_hours: {start: '25:00', end: '08:00'}\n" + GOOD, 1, "quiet_hours.start"),
        (
            "quiet_hours: {start: '21:00', end: '08:00', timezone: Mars/Olympus}\n" + GOOD,
            1,
            "unknown time zone",
        ),
        ("programmes: []\n", 1, "expected a non-empty list"),
        (
            "audiences:\n  - name: big\n    conditions: []\n" + GOOD,
            3,
            "audiences[0].conditions: an audience needs at least one condition",
        ),
        (
            GOOD.replace("fact: registered", "fact: audience.big"),
            3,
            "unknown fact 'audience.big'",  # an audience must be declared to be read
        ),
        ("programmes: [\n", 2, "invalid YAML"),
    ],
)
def test_a_mistake_names_file_line_and_problem(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "programmes.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_programmes(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_one_line_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.yaml: cannot read"):
        load_programmes(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("condition", "facts", "holds"),
    [
        (Condition("orders_total", ">=", 20), {"orders_total": 20.0}, True),
        (Condition("orders_total", ">=", 20), {"orders_total": None}, False),
        (Condition("orders_total", "<", 20), {}, False),  # unknown is neither more nor less
        (Condition("household_id", "exists"), {"household_id": "h_1"}, True),
        (Condition("household_id", "missing"), {"household_id": None}, True),
        (Condition("first_name", "in", ["Ann", "Bo"]), {"first_name": "Bo"}, True),
        (Condition("first_name", "not_in", ["Ann"]), {"first_name": "Bo"}, True),
        (Condition("first_name", ">", 3), {"first_name": "Bo"}, False),  # no TypeError
    ],
)
def test_conditions(condition: Condition, facts: dict[str, object], holds: bool) -> None:
    assert condition.holds(facts) is holds

"""The shared vocabulary: ``Meters`` semantics, and the rule that meter names are spelled in one place."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from domain import METER_NAMES, METERS, Meter, Meters

REPO = Path(__file__).resolve().parents[1]
# Python source that must derive meter names from ``domain`` (tests and shipped migrations are exempt: tests
# pin the contract by spelling it, and a shipped migration is never edited).
SOURCE_PACKAGES = ("app", "bridges", "workers", "sim", "policy")
# Identifiers that are meter names but also ordinary words ("connection", "progress") are only caught as field
# declarations and string constants; the unambiguous ones also as attributes and keyword arguments.
UNAMBIGUOUS = {"vitality", "cognition", "serenity"}


def test_meters_are_positional_in_meters_order_and_read_by_meter() -> None:
    meters = Meters(0.1, 0.2, 0.3, 0.4, 0.5)
    assert [meters[m] for m in METERS] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert meters[Meter.SERENITY] == meters["serenity"] == 0.4
    assert meters.as_dict() == dict(zip(METER_NAMES, (0.1, 0.2, 0.3, 0.4, 0.5), strict=True))
    assert Meters.from_mapping(meters.as_dict()) == meters
    assert pickle.loads(pickle.dumps(meters)) == meters
    assert hash(meters) == hash(Meters(0.1, 0.2, 0.3, 0.4, 0.5))
    assert Meters.neutral().as_tuple() == (0.5,) * len(METERS)


@pytest.mark.parametrize(
    "values", [(0.1, 0.2, 0.3, 0.4), (0.1, 0.2, 0.3, 0.4, 0.5, 0.6), (0.1, 0.2, 1.3, 0.4, 0.5), (-0.1,) * 5]
)
def test_meters_refuse_wrong_arity_and_values_outside_the_unit_interval(values: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        Meters(*values)


def test_a_refused_meter_value_is_named_nan_included() -> None:
    with pytest.raises(ValueError, match=r"serenity=1\.5 is outside"):
        Meters(0.1, 0.2, 0.3, 1.5, 0.5)
    with pytest.raises(ValueError, match="cognition=nan"):
        Meters(0.1, float("nan"), 0.3, 0.4, 0.5)


def test_meters_are_immutable_and_from_mapping_wants_exactly_the_meters() -> None:
    meters = Meters.neutral()
    with pytest.raises(AttributeError):
        meters._values = (0.0,) * 5
    with pytest.raises(ValueError, match="expected exactly the meters"):
        Meters.from_mapping({**meters.as_dict(), "mood": 0.5})
    with pytest.raises(ValueError, match="expected exactly the meters"):
        Meters.from_mapping(dict(list(meters.as_dict().items())[:4]))


def _spellings(tree: ast.AST) -> list[tuple[int, str]]:
    names = set(METER_NAMES)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in names:
            found.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id in names:
                found.append((node.lineno, f"field {node.target.id}"))
        elif isinstance(node, ast.Attribute) and node.attr in UNAMBIGUOUS:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.keyword) and node.arg in UNAMBIGUOUS:
            found.append((node.lineno, f"{node.arg}="))
    return found


def test_meter_names_are_spelled_only_in_domain() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for package in SOURCE_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for line, what in _spellings(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert offenders == [], "derive meter names from domain.METERS instead:\n" + "\n".join(offenders)


def test_the_spelling_check_finds_a_hand_written_meter_list() -> None:
    source = 'class T:\n    serenity: float\nCOLUMNS = ("vitality", "x")\nrow.cognition\nf(serenity=1)\n'
    assert sorted(line for line, _ in _spellings(ast.parse(source))) == [2, 3, 4, 5]


def test_missing_meters_are_flagged_stood_in_for_and_survive_pickling() -> None:
    meters = Meters.with_missing([0.7, None, 0.2, None, 0.9])
    assert meters.as_tuple() == (0.7, 0.5, 0.2, 0.5, 0.9)
    assert meters.missing == {Meter.COGNITION, Meter.SERENITY}
    # A measured 0.5 is not a missing meter.
    measured = Meters(0.7, 0.5, 0.2, 0.5, 0.9)
    assert meters != measured and not measured.missing
    assert pickle.loads(pickle.dumps(meters)) == meters
    assert pickle.loads(pickle.dumps(meters)).missing == meters.missing
    assert "cognition=missing" in repr(meters)
    with pytest.raises(ValueError):
        Meters.with_missing([None, None])

"""``jlis codes check`` and ``jlis codes generate``, driven through Typer's runner."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jlis.codes.cli import app
from jlis.codes.models import CodeKind, identify

runner = CliRunner()


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("123456789018", "個人番号 (my-number): valid"),
        ("24727059608", "住民票コード (resident-code): valid"),
        ("131016", "地方公共団体コード (lg-code): valid"),
        ("1180301018771", "法人番号 (corporate-number): valid"),
        ("１２３４５６７８９０１８", "個人番号 (my-number): valid"),
    ],
)
def test_check_valid(number: str, expected: str) -> None:
    result = runner.invoke(app, ["check", number])
    assert result.exit_code == 0
    assert result.output == expected + "\n"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("123456789019", "個人番号 (my-number): invalid: 個人番号 check digit does not match (expected 8)"),
        (
            "991014",
            "地方公共団体コード (lg-code): invalid: "
            "地方公共団体コード prefecture part must be 01-47 (got 99)",
        ),
        ("1234-5678", "unknown: invalid: length 9 matches no known number"),
    ],
)
def test_check_invalid_exits_1_with_the_reason(number: str, expected: str) -> None:
    result = runner.invoke(app, ["check", number])
    assert result.exit_code == 1
    assert result.output.startswith(expected)


@pytest.mark.parametrize("kind", list(CodeKind))
def test_generate_prints_valid_numbers(kind: CodeKind) -> None:
    result = runner.invoke(app, ["generate", kind.value, "--count", "25"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 25
    for line in lines:
        checked = identify(line)
        assert checked.valid and checked.kind is kind


def test_generate_with_seed_is_reproducible() -> None:
    first = runner.invoke(app, ["generate", "my-number", "-n", "5", "--seed", "7"])
    second = runner.invoke(app, ["generate", "my-number", "-n", "5", "--seed", "7"])
    other = runner.invoke(app, ["generate", "my-number", "-n", "5", "--seed", "8"])
    assert first.output == second.output != other.output


def test_generate_one_by_default() -> None:
    result = runner.invoke(app, ["generate", "lg-code"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["generate", "postal-code"], ["generate", "my-number", "--count", "0"], ["check"]]
)
def test_usage_errors(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2

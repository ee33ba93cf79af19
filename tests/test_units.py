import pytest

from taskflow.errors import UsageError
from taskflow.units import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("90s", 90), ("45m", 2700), ("3h30m", 12600), ("1d2h", 93600), ("1.5h", 5400),
    ("01:30:00", 5400), ("10:00", 600), ("1-12:00:00", 129600), ("2-1:30", 178200), ("3-4", 273600), (12, 12.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "3x", "h", "1h 2q"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(UsageError, match="--max-time"):
        parse_duration(text, "--max-time")


def test_format_duration():
    assert format_duration(5) == "5s"
    assert format_duration(125) == "2m05s"
    assert format_duration(3 * 3600 + 60) == "3h01m"
    assert format_duration(90000) == "1d1h0m"

"""Reading the machine-readable last line that every script under benchmarks/ prints."""

from __future__ import annotations


def last_line_figures(stdout: str) -> dict[str, float]:
    """The `key=value key=value ...` pairs of the last non-empty line, values as numbers; AssertionError with
    the line when it is not such a line."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "the benchmark printed nothing"
    last = lines[-1]
    pairs = [field.partition("=") for field in last.split()]
    assert pairs and all(key and sep for key, sep, _ in pairs), f"last line is not key=value pairs: {last!r}"
    try:
        return {key: float(value) for key, _, value in pairs}
    except ValueError:
        raise AssertionError(f"a value of the last line is not a number: {last!r}") from None

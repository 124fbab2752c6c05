"""One trial's outcome, and the campaign's table: per fault, trials, survived, rows lost / duplicated, recovery.

The last line of the table is the totals as ``trials=N survived=N failed=N lost=N duplicated=N secret_hits=N``
(what CI and the README quote).
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Iterable
from dataclasses import dataclass


class Fault(enum.StrEnum):
    """The faults the campaign injects: the value is the command line's name (``--faults``), ``label`` the table's."""

    KILLED_DRIVER = "killed-driver"
    LOST_NODE = "lost-node"
    FLAKY_S3 = "flaky-s3"
    CONCURRENT_RUNS = "concurrent-runs"
    FULL_DISK = "full-disk"
    CORRUPTION = "corruption"
    SERVER_RESTART = "server-restart"
    SECRETS = "secrets"
    BAD_INPUT = "bad-input"

    @property
    def label(self) -> str:
        return "flaky S3" if self is Fault.FLAKY_S3 else self.value.replace("-", " ")


@dataclass(frozen=True)
class TrialResult:
    """What one injected fault did. ``survived``: the run (or its rerun) finished with artifacts equal to the
    clean run's, or the fault ended in the named error it should; ``recovery_s``: from the fault to a finished,
    verified run (the rerun's wall time where the fault stops the run)."""

    fault: Fault
    survived: bool
    rows_lost: int = 0
    rows_duplicated: int = 0
    recovery_s: float = 0.0
    secret_hits: int = 0
    cases: int = 1  # generated inputs tried (bad input); 1 elsewhere
    detail: str = ""  # what happened, in a few words (the injection point, the error's first line)


HEADER = ("fault", "trials", "survived", "rows lost", "rows duplicated", "recovery s (median / max)", "notes")


def table_rows(results: Iterable[TrialResult]) -> list[tuple[str, ...]]:
    by_fault: dict[Fault, list[TrialResult]] = {}
    for result in results:
        by_fault.setdefault(result.fault, []).append(result)
    rows = []
    for fault, trials in by_fault.items():
        # Recovery of the trials that survived: a failed one's (often 0: it ended before the fault) is no recovery.
        recovery = [t.recovery_s for t in trials if t.survived] or [0.0]
        cases = sum(t.cases for t in trials)
        notes = [f"{cases} cases"] if cases != len(trials) else []
        notes += [f"secret hits {sum(t.secret_hits for t in trials)}"] if fault is Fault.SECRETS else []
        notes += [t.detail for t in trials if not t.survived and t.detail][:2]
        rows.append((
            fault.label,
            str(len(trials)),
            str(sum(t.survived for t in trials)),
            str(sum(t.rows_lost for t in trials)),
            str(sum(t.rows_duplicated for t in trials)),
            f"{statistics.median(recovery):.1f} / {max(recovery):.1f}",
            "; ".join(notes),
        ))  # fmt: skip
    return rows


def totals_line(results: Iterable[TrialResult]) -> str:
    trials = list(results)
    survived = sum(t.survived for t in trials)
    return (
        f"trials={len(trials)} survived={survived} failed={len(trials) - survived} "
        f"lost={sum(t.rows_lost for t in trials)} duplicated={sum(t.rows_duplicated for t in trials)} "
        f"secret_hits={sum(t.secret_hits for t in trials)}"
    )


def render(results: Iterable[TrialResult]) -> str:
    """The table as markdown (it pastes into a closing note or the README), then the totals line."""
    trials = list(results)
    rows = [HEADER, *table_rows(trials)]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(HEADER))
    return "\n".join([*lines, "", totals_line(trials)])

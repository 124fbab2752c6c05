from __future__ import annotations

import pyarrow as pa
import pytest

from bard_core.schemas import PROBLEMS, TRACES, SchemaMismatchError, conform


def test_missing_column_names_artifact_column_and_stage() -> None:
    table = pa.table({"problem_id": ["a"], "sample_idx": [0]})
    with pytest.raises(SchemaMismatchError) as info:
        conform(table, TRACES, "artifact sample/abc (traces)", "compress")
    message = str(info.value)
    assert "stage 'compress' reads artifact sample/abc (traces)" in message and "'correct'" in message


def test_types_are_cast_when_safe_and_rejected_otherwise() -> None:
    good = pa.table(
        {
            "problem_id": ["a"],
            "source": ["s"],
            "problem": ["p"],
            "answer": ["1"],
            "split": ["train"],
            "grader": ["math"],
            "meta": ["{}"],
            "extra": [1],
        }
    )
    assert conform(good, PROBLEMS, "x", "y").schema == PROBLEMS
    bad = good.set_column(3, "answer", pa.array([None], pa.string()))
    with pytest.raises(SchemaMismatchError, match="'answer' has 1 null"):
        conform(bad, PROBLEMS, "x", "y")
    mistyped = good.set_column(0, "problem_id", pa.array([[1]]))
    with pytest.raises(SchemaMismatchError, match="'problem_id' has type list"):
        conform(mistyped, PROBLEMS, "x", "y")


def test_a_problems_table_from_before_the_grader_column_says_to_re_create_it() -> None:
    old = pa.table({name: ["x"] for name in ("problem_id", "source", "problem", "answer", "split", "meta")})
    with pytest.raises(SchemaMismatchError, match=r"\['grader'\] are missing.*re-create it"):
        conform(old, PROBLEMS, "problems", "sample")

from __future__ import annotations

import subprocess
import sys

from bard_core.fingerprint import canonical_json, fingerprint
from bard_core.selection import GoldSelection

BASE = {
    "stage": "sample",
    "stage_version": 1,
    "config": {"n": 2, "sel": GoldSelection.SHORTEST_CORRECT},
    "prompts": {"teacher_user.txt": "ab"},
    "inputs": {"problems": "f00"},
}


def _fp(**changes: object) -> str:
    args = {**BASE, **changes}
    return fingerprint(args["stage"], args["stage_version"], args["config"], args["prompts"], args["inputs"])


def test_same_inputs_same_fingerprint_regardless_of_key_order() -> None:
    assert _fp() == _fp(config={"sel": GoldSelection.SHORTEST_CORRECT, "n": 2})
    assert canonical_json({"b": (1, 2), "a": GoldSelection.FIRST_CORRECT}) == '{"a":"first_correct","b":[1,2]}'


def test_every_ingredient_changes_the_fingerprint() -> None:
    variants = [
        _fp(stage="compress"),
        _fp(stage_version=2),
        _fp(config={"n": 3, "sel": GoldSelection.SHORTEST_CORRECT}),
        _fp(prompts={"teacher_user.txt": "ac"}),
        _fp(inputs={"problems": "f01"}),
    ]
    assert len({_fp(), *variants}) == len(variants) + 1


def test_fingerprint_is_stable_across_processes_and_hash_seeds() -> None:
    code = (
        "from bard_core.fingerprint import fingerprint\n"
        "print(fingerprint('ingest', 1, {'a': [1, 2], 'b': {'c': None}}, {}, {'x': 'y'}))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert outs == {fingerprint("ingest", 1, {"a": [1, 2], "b": {"c": None}}, {}, {"x": "y"})}
    # A recorded value: if this changes, every stored artifact address changes with it.
    assert outs == {"10a2902daa2a6cb0a849"}

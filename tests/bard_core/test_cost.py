"""Cost accounting from hand-written manifests: teacher totals, roles, reused flags, GPU seconds, tolerance of
missing fields, and the JSON and markdown renderings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bard_core.cost import (
    Role,
    TeacherCost,
    cost_markdown,
    reused_stages,
    role_of,
    run_cost,
    stage_cost,
    training_gpus,
)


def _engine(calls: float, requests: float, prompt: float, completion: float, usd: float, **extra: float) -> Any:
    return {"calls": calls, "requests": requests, "retries": calls - requests, "prompt_tokens": prompt,
            "completion_tokens": completion, "cost_usd": usd, **extra}  # fmt: skip


SAMPLE = {
    "stage": "sample",
    "fingerprint": "aaa",
    "timings": {"wall_s": 20.0, "cpu_s": 2.0},
    "usage": _engine(110, 100, 5000, 20000, 0.25, worker_cpu_s=4.0, gpu_s_reserved=0.0),
}
COMPRESS = {
    "stage": "compress",
    "fingerprint": "bbb",
    "timings": {"wall_s": 30.0, "cpu_s": 3.0},
    "usage": _engine(400, 400, 9000, 3000, 0.5, worker_cpu_s=10.0, gpu_s_reserved=60.0),
}
SFT_ON_GPU = {
    "stage": "sft",
    "fingerprint": "ccc",
    "timings": {"wall_s": 100.0, "cpu_s": 40.0},
    "usage": {"train_runtime_s": 80.0, "train_tokens": 1e6},
    "stats": {"precision": {"device": "cuda NVIDIA H200 (bf16, tf32)"}},
}
EVALUATE = {  # one engine set per evaluated model label, as the evaluate stage records them
    "stage": "evaluate",
    "fingerprint": "ddd",
    "timings": {"wall_s": 50.0, "cpu_s": 5.0},
    "usage": {"ray_start_s": 1.0, **{f"{label}_{k}": v for label in ("sft", "truncated_sft")
              for k, v in _engine(7, 7, 70, 700, 0.0, worker_cpu_s=1.5, gpu_s_reserved=2.0).items()}},
}  # fmt: skip


def test_roles_follow_the_stage_name_and_labels_keep_theirs() -> None:
    assert role_of("sample") is Role.TEACHER and role_of("amplify") is Role.ASSISTANT
    assert role_of("assistant") is Role.ASSISTANT and role_of("select") is Role.ASSISTANT
    assert role_of("compress") is Role.COMPRESSOR and role_of("rl") is Role.STUDENT
    assert role_of("evaluate") is Role.EVALUATION
    assert role_of("model:toy-student") is Role.PIPELINE and role_of("something-new") is Role.PIPELINE


def test_teacher_totals_come_from_teacher_stages_only() -> None:
    cost = run_cost({"evaluate": EVALUATE, "compress": COMPRESS, "sample": SAMPLE})  # as a run manifest sorts them
    teacher = cost.teacher
    assert teacher.requests == 110  # HTTP calls, the 10 retries included
    assert teacher.asked == 100 and teacher.tokens == 25000 and teacher.cost_usd == pytest.approx(0.25)
    assert cost.cost_usd == pytest.approx(0.75)  # every engine's dollars: teacher and compressor
    assert [s.role for s in cost.stages] == [Role.TEACHER, Role.COMPRESSOR, Role.EVALUATION]  # pipeline order


def test_cpu_and_gpu_seconds_per_stage_and_role() -> None:
    cost = run_cost({"sample": SAMPLE, "compress": COMPRESS, "sft": SFT_ON_GPU}, gpus={"sft": 2.0})
    sample, compress, sft = cost.stages
    assert sample.cpu_s == 6.0 and compress.cpu_s == 13.0  # the process and its engine workers
    assert compress.gpu_s == 60.0 and sft.gpu_s == 160.0  # engine reservation; train runtime x 2 GPUs
    assert cost.roles[Role.STUDENT].gpu_s == 160.0 and cost.roles[Role.TEACHER].wall_s == 20.0
    assert cost.total.wall_s == 150.0 and cost.total.gpu_s == 220.0
    assert Role.EVALUATION not in cost.roles


def test_evaluate_sums_every_models_engine_figures() -> None:
    figures = stage_cost("evaluate", EVALUATE)
    assert (figures.calls, figures.requests, figures.completion_tokens) == (14, 14, 1400)
    assert figures.cpu_s == 8.0 and figures.gpu_s == 4.0


def test_training_gpu_seconds_need_a_gpu_device_or_a_recorded_count() -> None:
    on_cpu = {**SFT_ON_GPU, "stats": {"precision": {"device": "cpu Intel Xeon (amx_bf16)"}}}
    assert stage_cost("sft", on_cpu, gpus=4.0).gpu_s == 0.0  # the config asked for GPUs; it trained on CPU
    recorded = {**SFT_ON_GPU, "usage": {"train_runtime_s": 10.0, "gpus": 8}}
    assert stage_cost("sft", recorded, gpus=1.0).gpu_s == 80.0  # the stage's own record wins
    assert stage_cost("sft", SFT_ON_GPU).gpu_s == 0.0  # nothing says how many: 0, not a guess


def test_training_gpus_read_the_run_config() -> None:
    config = {"sft": {"resources": {"workers": 4, "use_gpu": True}}, "rl": {"resources": {"workers": 2}},
              "bridge": {"sft": {"resources": {"workers": 1, "use_gpu": True}}}}  # fmt: skip
    assert training_gpus(config) == {"sft": 4.0, "rl": 0.0, "assistant": 1.0}
    assert training_gpus({}) == {"sft": 0.0, "rl": 0.0, "assistant": 0.0}


def test_reused_stages_count_once_and_are_flagged() -> None:
    stages = {"sample": {"status": "skipped"}, "compress": {"status": "executed"}, "sft": {"status": "reused"}}
    reused = reused_stages(stages)
    assert reused == {"sample", "sft"}
    twice = {"sample": SAMPLE, "sample:again": SAMPLE, "compress": COMPRESS}  # one artifact under two entries
    cost = run_cost(twice, reused)
    assert [(s.stage, s.reused) for s in cost.stages] == [("sample", True), ("compress", False)]
    assert cost.teacher.requests == 110  # what the artifact cost, not zero, not twice


def test_missing_fields_count_as_zero() -> None:
    bare = stage_cost("ingest", {})
    assert (bare.wall_s, bare.cpu_s, bare.gpu_s, bare.calls, bare.cost_usd) == (0, 0, 0, 0, 0)
    odd = stage_cost("sample", {"timings": {"wall_s": None}, "usage": {"calls": "n/a", "prompt_tokens": 3}})
    assert odd.wall_s == 0 and odd.calls == 0 and odd.prompt_tokens == 3
    assert run_cost({}).teacher == TeacherCost()


def test_as_dict_is_json_and_round_trips_the_teacher() -> None:
    cost = run_cost({"sample": SAMPLE, "sft": SFT_ON_GPU}, {"sft"}, {"sft": 1.0})
    data = json.loads(json.dumps(cost.as_dict(), allow_nan=False))
    assert data["teacher"] == {"requests": 110, "asked": 100, "prompt_tokens": 5000, "completion_tokens": 20000,
                               "tokens": 25000, "cost_usd": 0.25}  # fmt: skip
    assert data["roles"]["student"] == {"wall_s": 100.0, "cpu_s": 40.0, "gpu_s": 80.0}
    assert data["stages"][1]["reused"] is True and data["stages"][1]["role"] == "student"
    assert TeacherCost.from_dict(data["teacher"]) == cost.teacher


def test_markdown_has_the_teacher_line_and_one_row_per_stage() -> None:
    text = cost_markdown(run_cost({"sample": SAMPLE, "compress": COMPRESS}, {"sample"}))
    assert "**Teacher:** 110 requests" in text and "25,000 tokens" in text and "$0.2500" in text
    assert "| sample | teacher | reused | 20.0 | 6.0 | 0.0 | 100 | 110 | 5,000 | 20,000 | $0.2500 |" in text
    assert "| compress | compressor | this run |" in text and "| **total** | 50.0 | 19.0 | 60.0 |" in text

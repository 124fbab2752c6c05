"""Budget fidelity of a served student (`bard serve`), with and without enforcement, beside its evaluation.

It exports REF (sft/<fp>, rl/<fp>, a run id or `latest`), starts vLLM's OpenAI server on it as `bard serve`
does (from the vLLM environment), and asks the held-out problems of the run's ingest artifact (split
`test`, --limit of them) with the official `openai` client at every budget tier (`chat_template_kwargs:
{thinking_budget: N}`) and every effort mode (`reasoning_effort`), each once with budget forcing off and
once on (the per-request `bard_enforce` field). Outputs are judged by `bard_core.judge.verdicts` with the
student's tokenizer: the evaluate stage's rule. It prints, per tier: mean relative deviation, within
tolerance, over-budget share and accuracy; per mode: mean tokens, token reduction vs `high` and accuracy
change vs `high`; then the run's evaluate-stage metrics for the same student, if it has them. Greedy
decoding (temperature 0), so the evaluation's sampled figures differ by sampling as well.

The last line is machine-readable: `served_mrd_<tier>=... enforced_mrd_<tier>=... served_over_budget=...
enforced_over_budget=... served_accuracy=... enforced_accuracy=...` (plus `*_tokens_<mode>`).

    .venv/bin/python benchmarks/serve_fidelity.py REF --store file://.bard/store [--limit 32] [--port 8011]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bard_core.budget import HFTokenCounter  # noqa: E402
from bard_core.chat_contract import BudgetContract  # noqa: E402
from bard_core.judge import Verdict, verdicts  # noqa: E402
from bard_pipeline.infra.export import export_student, resolve_student  # noqa: E402
from bard_pipeline.infra.serving.launcher import ServeOptions, load_contract, serving, vllm_python  # noqa: E402
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore  # noqa: E402

Problem = dict[str, Any]


def held_out(store: ArtifactStore, model: ArtifactRef, split: str, limit: int) -> list[Problem]:
    """The first ``limit`` problems (by id) of ``split`` in the ingest artifact of the run that trained ``model``."""
    for record in store.list_runs():
        stages = record.get("stages", {})
        if any(info.get("artifact") == model.key for info in stages.values()) and "ingest" in stages:
            table = store.read_table(ArtifactRef.parse(stages["ingest"]["artifact"]), "problems").to_pylist()
            rows = sorted((r for r in table if r["split"] == split), key=lambda r: r["problem_id"])
            if rows:
                return rows[:limit]
    raise SystemExit(f"no run in {store.root} trained {model.key} with ingested {split!r} problems")


CONCURRENT_REQUESTS = 32


def ask(
    client: Any, model: str, problems: Sequence[Problem], budget: int | None, effort: str | None, enforce: bool,
    max_tokens: int,
) -> list[str]:  # fmt: skip
    """One greedy completion per problem under a budget (tokens) or an effort mode, sent concurrently (as
    clients of a server do: vLLM batches them)."""
    extra: dict[str, Any] = {"bard_enforce": enforce}
    if budget is not None:
        extra["chat_template_kwargs"] = {"thinking_budget": budget}
    kwargs = {"reasoning_effort": effort} if effort is not None else {}

    def one(problem: Problem) -> str:
        response = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": problem["problem"]}], max_tokens=max_tokens,
            temperature=0.0, extra_body=extra, **kwargs,
        )  # fmt: skip
        return response.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
        return list(pool.map(one, problems))


def judged(
    texts: list[str], problems: Sequence[Problem], budget_tokens: int, contract: BudgetContract, counter: Any
) -> list[Verdict]:
    metas = [json.loads(p["meta"]) if isinstance(p.get("meta"), str) else p.get("meta") for p in problems]
    return verdicts(
        texts, [p["answer"] for p in problems], [p["grader"] for p in problems], metas,
        [budget_tokens] * len(texts), contract.spec, counter,
    )  # fmt: skip


def summary(rows: list[Verdict], budget_tokens: int) -> dict[str, float]:
    return {
        "mrd": statistics.mean(abs(v.reasoning_tokens - budget_tokens) / budget_tokens for v in rows),
        "within": statistics.mean(v.within for v in rows),
        "over": statistics.mean(v.over for v in rows),
        "accuracy": statistics.mean(v.correct for v in rows),
        "tokens": statistics.mean(v.reasoning_tokens for v in rows),
        "max_tokens": max(v.reasoning_tokens for v in rows),
    }


def evaluate_metrics(store: ArtifactStore, evaluation: ArtifactRef | None) -> list[dict[str, Any]]:
    if evaluation is None:
        return []
    try:
        return store.read_table(evaluation, "metrics").to_pylist()
    except KeyError:
        return []


def measure(args: argparse.Namespace) -> dict[str, str]:
    from openai import OpenAI

    store = ArtifactStore(args.store)
    model_ref, evaluation = resolve_student(store, args.ref)
    problems = held_out(store, model_ref, args.split, args.limit)
    with tempfile.TemporaryDirectory(prefix="bard-serve-fidelity-") as tmp:
        folder = export_student(store, model_ref, Path(tmp) / "model", evaluation=evaluation)
        contract, counter = load_contract(folder), HFTokenCounter.from_dir(folder)
        options = ServeOptions(port=args.port, served_model_name="student", cpu=not args.cuda,
                               dtype="auto" if args.cuda else "float32", max_model_len=args.max_model_len)  # fmt: skip
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        print(f"serving {model_ref.key} on {len(problems)} {args.split} problems ...", flush=True)
        with serving(vllm_python(args.vllm_python), folder, options, log=Path(tmp) / "serve.log"):
            client = OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key="unused")
            tiers: dict[tuple[str, int], dict[str, float]] = {}
            modes: dict[tuple[str, str], dict[str, float]] = {}
            for enforce in (False, True):
                arm = "enforced" if enforce else "served"
                for tier in contract.spec.tiers_tokens:
                    texts = ask(client, "student", problems, tier, None, enforce, args.max_tokens)
                    tiers[arm, tier] = summary(judged(texts, problems, tier, contract, counter), tier)
                for mode in contract.modes:
                    # A share mode has no token budget (none is enforced); the mode table reads only its
                    # mean length and accuracy, so it is judged against the largest tier.
                    budget = mode.tier_tokens or contract.spec.tiers_tokens[-1]
                    texts = ask(client, "student", problems, None, mode.name, enforce, args.max_tokens)
                    modes[arm, mode.name] = summary(judged(texts, problems, budget, contract, counter), budget)
    return report(tiers, modes, evaluate_metrics(store, evaluation), model_ref)


def report(
    tiers: dict[tuple[str, int], dict[str, float]], modes: dict[tuple[str, str], dict[str, float]],
    metrics: list[dict[str, Any]], model_ref: ArtifactRef,
) -> dict[str, str]:  # fmt: skip
    print(f"\n{'arm':9} {'tier':>5} {'mean tok':>9} {'max tok':>8} {'MRD':>6} {'within':>7} {'over':>6} {'acc':>6}")
    for (arm, tier), s in tiers.items():
        print(f"{arm:9} {tier:>5} {s['tokens']:>9.1f} {s['max_tokens']:>8.0f} {s['mrd']:>6.3f} {s['within']:>7.3f} "
              f"{s['over']:>6.3f} {s['accuracy']:>6.3f}")  # fmt: skip
    figures: dict[str, str] = {}
    for arm in ("served", "enforced"):
        rows = [s for (a, _), s in tiers.items() if a == arm]
        figures.update({f"{arm}_mrd_{t}": f"{s['mrd']:.4f}" for (a, t), s in tiers.items() if a == arm})
        figures[f"{arm}_over_budget"] = f"{statistics.mean(s['over'] for s in rows):.4f}"
        figures[f"{arm}_within"] = f"{statistics.mean(s['within'] for s in rows):.4f}"
        figures[f"{arm}_accuracy"] = f"{statistics.mean(s['accuracy'] for s in rows):.4f}"
    if modes:
        print(f"\n{'arm':9} {'mode':>7} {'mean tok':>9} {'reduction vs high':>18} {'acc':>6} {'acc change':>11}")
        for (arm, name), s in modes.items():
            high = modes.get((arm, "high"))
            reduction = 1 - s["tokens"] / high["tokens"] if high and high["tokens"] else float("nan")
            change = s["accuracy"] - high["accuracy"] if high else float("nan")
            print(f"{arm:9} {name:>7} {s['tokens']:>9.1f} {reduction:>18.3f} {s['accuracy']:>6.3f} {change:>11.3f}")
            figures[f"{arm}_tokens_{name}"] = f"{s['tokens']:.2f}"
    print(f"\nevaluate-stage metrics of {model_ref.key} (sampled, the run's benchmarks):")
    if not metrics:
        print("  (none: the run has no evaluation of this student)")
    keys = ("benchmark", "budget_tokens", "mean_tokens", "mean_relative_deviation", "within_tolerance",
            "over_budget", "accuracy")  # fmt: skip
    for row in metrics:
        if row.get("model") in (None, model_ref.stage, model_ref.key):
            print("  " + " ".join(f"{k}={row[k]}" for k in keys if k in row))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", help="sft/<fp>, rl/<fp>, a run id or unique prefix, or latest")
    parser.add_argument("--store", default="file://.bard/store", help="store root URL")
    parser.add_argument("--split", default="test", help="ingested split of the benchmark problems")
    parser.add_argument("--limit", type=int, default=32, help="problems asked per budget and arm")
    parser.add_argument("--max-tokens", type=int, default=320, help="completion tokens per answer")
    parser.add_argument("--max-model-len", type=int, default=None, help="vLLM context length")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--vllm-python", default=None, help="the vLLM environment's python")
    parser.add_argument("--cuda", action="store_true", help="a CUDA vLLM (no CPU flags, dtype auto)")
    figures = measure(parser.parse_args())
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()

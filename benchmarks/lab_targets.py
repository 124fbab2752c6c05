"""Issue #13's numeric targets for the toy world, computed from an evaluate artifact's stored generations.

For the SFT and RL students on the held-out split (greedy or k samples, as the evaluation ran them):
accuracy at the largest budget; Spearman(budget, accuracy) over the grid and largest minus smallest budget;
mean relative deviation |L-B|/B and the share within tolerance on the trained tiers of >= 32 tokens and on
budgets that are not tiers (held out of training); and the paired bootstrap interval (over problems) of RL's
mean reward minus SFT's. Every figure comes from `bard_core.experiment_metrics`, as the experiment report's do.

    .venv/bin/python benchmarks/lab_targets.py [EVALUATE_REF | RUN_ID | latest] [--store file://.bard/store]
    .venv/bin/python benchmarks/lab_targets.py --fresh --recipe configs/smoke.yaml   # runs RECIPE first (CI size)

The last line is machine-readable (`key=value ...`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bard_pipeline.infra.env import apply_defaults  # noqa: E402

apply_defaults()

from bard_core.budget import BudgetSpec  # noqa: E402
from bard_core.experiment_metrics import Bootstrap, arm_summary, paired_difference, per_problem  # noqa: E402
from bard_core.metrics import spearman  # noqa: E402
from bard_core.recipes import load_config  # noqa: E402
from bard_core.schemas import EvalMode  # noqa: E402
from bard_pipeline.infra.store import ArtifactRef, ArtifactStore  # noqa: E402


def _evaluate_ref(store: ArtifactStore, target: str) -> ArtifactRef:
    if target.startswith("evaluate/"):
        return ArtifactRef.parse(target)
    run = store.latest_run("evaluate") if target == "latest" else store.read_run(store.resolve_run(target))
    return ArtifactRef.parse(run["stages"]["evaluate"]["artifact"])


def _reward(spec: BudgetSpec):  # type: ignore[no-untyped-def]
    """The RL reward of a stored generation: correct x fidelity (a wrong or unparsed output earns 0)."""
    return lambda row: spec.fidelity(int(row["reasoning_tokens"]), int(row["budget_tokens"])) if row["correct"] else 0.0


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.fmean(values) if values else math.nan


def _fresh_run(recipe: str, store_root: str) -> str:
    """Run RECIPE end to end into an empty store; returns the run id (the smallest size that has an evaluation)."""
    from bard_pipeline.flows.distill import distill

    state = distill(recipe=recipe, overrides=[f"store.root={store_root}"], return_state=True)
    run_id = str(state.state_details.flow_run_id)
    if ArtifactStore(store_root).read_run(run_id)["status"] != "completed":
        raise SystemExit(f"the run of {recipe} failed: {state.message}")
    return run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="latest")
    parser.add_argument("--store", default="file://.bard/store")
    parser.add_argument("--recipe", default="configs/toy.yaml", help="for the budget contract and the tiers")
    parser.add_argument("--fresh", action="store_true", help="run --recipe first, into a temporary store")
    args = parser.parse_args()
    if args.fresh:
        args.store = f"file://{tempfile.mkdtemp(prefix='bard-lab-targets-')}/store"
        args.target = _fresh_run(args.recipe, args.store)
    store = ArtifactStore(args.store)
    ref = _evaluate_ref(store, args.target)
    cfg = load_config(args.recipe, [f"store.root={args.store}"])
    spec: BudgetSpec = cfg.budget.spec()
    boot = Bootstrap(cfg.evaluate.bootstrap_samples, cfg.evaluate.confidence, cfg.evaluate.seed)
    rows = {
        label: [
            r for r in store.read_table(ref, f"generations_{label}").to_pylist() if r["mode"] == EvalMode.BUDGET.value
        ]
        for label in ("sft", "rl")
    }
    print(f"{ref.key}: {len(rows['sft'])} sft / {len(rows['rl'])} rl budgeted generations")
    figures: dict[str, float] = {}
    for label, mine in rows.items():
        summary = {s["budget_tokens"]: s for s in arm_summary(mine, spec, boot)}
        budgets = sorted(summary)
        accuracy = [summary[b]["accuracy"] for b in budgets]
        trained = [b for b in budgets if b in spec.tiers_tokens and b >= 32]
        between = [b for b in budgets if b not in spec.tiers_tokens]
        figures |= {
            f"{label}_acc_max": accuracy[-1],
            f"{label}_spearman_acc": spearman(budgets, accuracy),
            f"{label}_acc_spread": accuracy[-1] - accuracy[0],
            f"{label}_dev_tiers": _mean(summary[b]["mean_relative_deviation"] for b in trained),
            f"{label}_within_tiers": _mean(summary[b]["within_tolerance"] for b in trained),
            f"{label}_dev_heldout": _mean(summary[b]["mean_relative_deviation"] for b in between),
            f"{label}_spearman_len": spearman(budgets, [summary[b]["mean_reasoning_tokens"] for b in budgets]),
        }
        mean_reward = _mean(v for by in per_problem(mine, _reward(spec)).values() for v in by.values())
        figures[f"{label}_mean_reward"] = mean_reward
        print(f"{label}: budgets {budgets}; accuracy " + " / ".join(f"{a:.3f}" for a in accuracy))
    pooled = paired_difference(rows["rl"], rows["sft"], _reward(spec), boot)[-1]
    figures |= {"rl_minus_sft_reward": pooled["difference"], "ci_low": pooled["ci_low"], "ci_high": pooled["ci_high"]}
    print(" ".join(f"{key}={value:.4f}" for key, value in figures.items()))


if __name__ == "__main__":
    main()

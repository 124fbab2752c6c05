"""The model card of an exported student (`bard export`): a Hub model card's YAML header and a markdown body.

Pure: the pipeline gathers the facts (the artifacts the student came from, its budget contract, the
metrics rows of its evaluation) and this module writes the text. The header follows the Hub's model-card
conventions (``huggingface_hub.ModelCard`` parses it); the metrics live in a plain table of the body, not a
``model-index``: the Hub's leaderboard schema has no place for a budget or a length deviation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from bard_core.chat_contract import CONTRACT_FILE, BudgetContract, EffortMode

MODEL_CARD_TAGS = ("reasoning", "budget-aware", "bard", "distillation")
DEFAULT_LICENSE = "apache-2.0"
"""The project's licence (LICENSE). A student fine-tuned from a Hub model inherits that model's licence:
the exporter should be told it (`bard export --license`)."""


@dataclass(frozen=True)
class ModelCardFacts:
    """What the card says about one exported student."""

    model_artifact: str
    """The trained model's artifact key, e.g. rl/3f2a9c..."""
    stage: str
    """Which training produced it: sft or rl."""
    run_name: str
    """The recipe's name (the card's title)."""
    contract: BudgetContract
    """The budget contract the student was trained under."""
    base_model: str | None
    """The Hub id the student was fine-tuned from; None for a model the pipeline built (say so in base_note)."""
    base_note: str
    """One sentence on where the student's weights started (always shown)."""
    license: str = DEFAULT_LICENSE
    """The Hub licence identifier of the exported weights."""
    dataset_artifact: str | None = None
    """The materialize artifact the student was trained on."""
    dataset_repo: str | None = None
    """That dataset's Hub repo, when it was pushed (the header's ``datasets`` lists only Hub repos)."""
    evaluation: str | None = None
    """The evaluate artifact the metrics come from."""
    metrics: tuple[Mapping[str, Any], ...] = ()
    """That evaluation's metrics rows for this model (schemas.METRICS), any mode."""
    plots: tuple[str, ...] = ()
    """The evaluation's plots, as paths relative to the exported folder."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """generation_config.json's sampling settings (temperature, top_p, max_new_tokens)."""
    repo_id: str | None = None
    """Where the folder is published (the usage snippets name it); None: a local folder."""


def front_matter(facts: ModelCardFacts) -> dict[str, Any]:
    """The card's YAML header as a mapping (key order as the Hub shows it)."""
    header: dict[str, Any] = {}
    if facts.base_model:
        header["base_model"] = facts.base_model
    if facts.dataset_repo:
        header["datasets"] = [facts.dataset_repo]
    header.update(
        {
            "license": facts.license,
            "library_name": "transformers",
            "pipeline_tag": "text-generation",
            "tags": list(MODEL_CARD_TAGS),
        }
    )
    if not facts.base_model:
        header["tags"].append("random-init")  # searchable honesty: this is not a fine-tune of a Hub model
    return header


def model_card(facts: ModelCardFacts) -> str:
    """The whole README.md: header, what the model is, its contract, its budget-following, how to call it."""
    header = "---\n" + yaml.safe_dump(front_matter(facts), sort_keys=False) + "---\n"
    sections = [_intro(facts), _contract(facts.contract), _evaluation(facts), _usage(facts), _provenance(facts)]
    return header + "\n".join(s for s in sections if s) + "\n"


def _intro(facts: ModelCardFacts) -> str:
    spec = facts.contract.spec
    training = {"sft": "supervised fine-tuning on budget-compressed reasoning traces", "rl": "SFT then GRPO"}
    return "\n".join(
        [
            f"# BARD student: {facts.run_name} ({facts.stage})",
            "",
            "A budget-aware reasoning model distilled with BARD: it reasons inside `<think>...</think>` for about "
            f"as many tokens as the request's `thinking_budget` ({spec.tiers_tokens[0]}-{spec.tiers_tokens[-1]} "
            f"tokens), then answers. Trained by {training.get(facts.stage, facts.stage)}.",
            "",
            f"- base: {facts.base_note}",
            f"- artifact: `{facts.model_artifact}`"
            + (f", trained on dataset `{facts.dataset_artifact}`" if facts.dataset_artifact else ""),
            "",
        ]
    )


def _mode_row(mode: EffortMode, contract: BudgetContract) -> str:
    if mode.tier_tokens is not None:
        bound = contract.upper_bound_tokens(effort=mode.name)
        return f"| `{mode.name}` | the {mode.tier_tokens}-token tier | {bound} |"
    return f"| `{mode.name}` | {mode.share:.0%} of the problem's full-length reasoning | none (no token bound) |"


def _contract(contract: BudgetContract) -> str:
    spec = contract.spec
    shape = (
        f"close to the budget (within {spec.tolerance:.0%} either way)"
        if spec.shape.value == "target"
        else f"at most the budget (+{spec.tolerance:.0%})"
    )
    default = contract.default if contract.default is not None else spec.tiers_tokens[-1]
    lines = [
        "## Budget contract",
        "",
        f"- `thinking_budget`: an integer in [{spec.tiers_tokens[0]}, {spec.tiers_tokens[-1]}] tokens; trained "
        f"tiers {list(spec.tiers_tokens)}. The reasoning should be {shape}.",
        f"- neither `thinking_budget` nor `reasoning_effort`: `{default}`.",
        f"- an answer longer than {contract.leak_answer_tokens} tokens after `</think>` counts as leaked reasoning.",
        f"- the chat template renders the user turn the student was trained on; `{CONTRACT_FILE}` holds the "
        "same contract for servers that enforce it (`bard serve`).",
    ]
    if contract.modes:
        lines += ["", "| `reasoning_effort` | means | longest reasoning enforced (tokens) |", "|---|---|---:|"]
        lines += [_mode_row(m, contract) for m in contract.modes]
    return "\n".join(lines) + "\n"


def _fmt(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _evaluation(facts: ModelCardFacts) -> str:
    if not facts.evaluation:
        return "## Evaluation\n\nNo evaluation was exported with this model.\n"
    budgeted = [r for r in facts.metrics if r.get("mode") == "budget"]
    efforts = [r for r in facts.metrics if r.get("mode") == "effort"]
    lines = [
        "## Budget following",
        "",
        f"From evaluation `{facts.evaluation}`: accuracy (with its bootstrap confidence interval), mean reasoning "
        "tokens, mean relative deviation |tokens - budget| / budget, and the share within the contract's tolerance.",
        "",
        "| benchmark | budget | problems | accuracy | CI | mean reasoning tokens | mean rel. deviation | within tol. |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in sorted(budgeted, key=lambda r: (str(r["benchmark"]), r["budget_tokens"] or 0)):
        ci = f"[{_fmt(r.get('accuracy_ci_low'))}, {_fmt(r.get('accuracy_ci_high'))}]"
        lines.append(
            f"| {r['benchmark']} | {r['budget_tokens']} | {r.get('problems', '–')} | {_fmt(r.get('accuracy'))} | "
            f"{ci} | {_fmt(r.get('mean_reasoning_tokens'), 1)} | {_fmt(r.get('mean_relative_deviation'))} | "
            f"{_fmt(r.get('within_tolerance'))} |"
        )
    if not budgeted:
        lines.append("| (no budgeted rows for this model) | | | | | | | |")
    if efforts:
        lines += ["", "| benchmark | reasoning_effort | accuracy | mean reasoning tokens |", "|---|---|---:|---:|"]
        lines += [
            f"| {r['benchmark']} | {r.get('effort')} | {_fmt(r.get('accuracy'))} | "
            f"{_fmt(r.get('mean_reasoning_tokens'), 1)} |"
            for r in efforts
        ]
    lines += [""] + [f"![{p.rsplit('/', 1)[-1].rsplit('.', 1)[0]}]({p})" for p in facts.plots]
    return "\n".join(lines) + "\n"


def _usage(facts: ModelCardFacts) -> str:
    name = facts.repo_id or "PATH/TO/THIS/FOLDER"
    budget = _example_budget(facts.contract)
    effort = facts.contract.mode_names[0] if facts.contract.modes else None
    gen = facts.generation
    sampling = ", ".join(f"{k}={gen[k]}" for k in ("temperature", "top_p", "max_new_tokens") if k in gen)
    lines = [
        "## Use",
        "",
        f"`generation_config.json` sets {sampling or 'the sampling settings'} (the evaluation's).",
        "",
        "transformers:",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tok = AutoTokenizer.from_pretrained("{name}")',
        f'model = AutoModelForCausalLM.from_pretrained("{name}")',
        'messages = [{"role": "user", "content": "What is 17 + 25?"}]',
        "inputs = tok.apply_chat_template(",
        f'    messages, thinking_budget={budget}, add_generation_prompt=True, return_tensors="pt", return_dict=True',
        ")",
        "out = model.generate(**inputs)",
        'print(tok.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
        "vLLM, or any OpenAI-compatible server that renders the model's chat template:",
        "",
        "```python",
        "from openai import OpenAI",
        "",
        f"# vllm serve {name}    (or: bard serve MODEL_REF, which also enforces the budget)",
        'client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="EMPTY")',
        "reply = client.chat.completions.create(",
        f'    model="{name}",',
        '    messages=[{"role": "user", "content": "What is 17 + 25?"}],',
        f'    extra_body={{"chat_template_kwargs": {{"thinking_budget": {budget}}}}},',
        ")",
    ]
    if effort:
        lines += [
            f'# or by mode: extra_body={{"chat_template_kwargs": {{"reasoning_effort": "{effort}"}}}};',
            f'# `bard serve` also reads the request field: reasoning_effort="{effort}"',
        ]
    lines += ["```", ""]
    return "\n".join(lines)


def _example_budget(contract: BudgetContract) -> int:
    tiers = contract.spec.tiers_tokens
    return tiers[len(tiers) // 2]


def _provenance(facts: ModelCardFacts) -> str:
    rows: Sequence[tuple[str, str | None]] = (
        ("model", facts.model_artifact),
        ("dataset", facts.dataset_artifact),
        ("evaluation", facts.evaluation),
    )
    lines = ["## Provenance", "", "BARD store artifacts (content-addressed; `bard artifacts show KEY`):", ""]
    lines += [f"- {label}: `{key}`" for label, key in rows if key]
    return "\n".join(lines) + "\n"

"""The budget contract's two renderings agree byte for byte: the Python user turn every stage trains and
evaluates on, and the exported chat template a server renders from `thinking_budget` / `reasoning_effort`."""

from __future__ import annotations

import copy

import pytest
from jinja2.exceptions import TemplateError

from bard_core.budget import BudgetError
from bard_core.chat_contract import BudgetContract
from bard_core.config.stages import BudgetConfig
from bard_core.prompting import PromptError, PromptTemplate, load_prompt
from bard_core.toy.tokenizer import toy_corpus, train_toy_tokenizer

MODES = {"low": {"share": 0.25}, "medium": {"tier_tokens": 32}, "high": {"share": 1.0}}
PROBLEMS = ["What is 2 + 2?  ", "Ünïcode ✓ 😀 {braces} 'single' \"double\"\n\\back\tslash {{x}}", "\n  padded\n"]
REQUESTS = [(16, None), (64, None), (128, None), (None, "low"), (None, "medium"), (None, "high"), (None, None),
            (16, "high")]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizers():
    contract = BudgetConfig(tiers_tokens=(16, 32, 64, 128), modes=MODES).contract()
    trained = train_toy_tokenizer(toy_corpus(10, 7, [16, 32, 64], load_prompt("budget_user.txt")), 400)
    served = copy.deepcopy(trained)
    served.chat_template = contract.chat_template(trained.chat_template)
    return contract, trained, served


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("budget", "effort"), REQUESTS)
def test_the_exported_template_renders_the_trained_prompt(tokenizers, problem, budget, effort) -> None:
    contract, trained, served = tokenizers
    kwargs = {k: v for k, v in (("thinking_budget", budget), ("reasoning_effort", effort)) if v is not None}
    got = served.apply_chat_template([{"role": "user", "content": problem}], add_generation_prompt=True,
                                     tokenize=False, **kwargs)  # fmt: skip
    user = contract.render(problem, budget, effort)
    want = trained.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False)
    assert got == want
    assert got.encode() == want.encode()


def test_requests_resolve_as_documented(tokenizers) -> None:
    contract, _, _ = tokenizers
    assert contract.render("Q", 64) == "Q\n\nThinking budget: 64 tokens."
    assert contract.render("Q", effort="medium") == contract.render("Q", 32)  # a tier mode is its tier
    assert contract.render("Q", effort="low") == "Q\n\nReasoning effort: low."
    assert contract.render("Q") == contract.render("Q", 128)  # no default set: the largest tier
    assert contract.upper_bound_tokens(64) == 76 and contract.upper_bound_tokens(effort="low") is None
    with pytest.raises(BudgetError, match="outside the tier range"):
        contract.render("Q", 5)
    with pytest.raises(BudgetError, match="unknown reasoning_effort 'xhigh'"):
        contract.render("Q", effort="xhigh")


def test_the_template_refuses_what_training_never_saw(tokenizers) -> None:
    _, _, served = tokenizers
    message = [{"role": "user", "content": "Q"}]
    with pytest.raises(TemplateError, match=r"outside the trained range \[16, 128\]"):
        served.apply_chat_template(message, thinking_budget=5, tokenize=False)
    with pytest.raises(TemplateError, match="unknown reasoning_effort xhigh; this model has: low, medium, high"):
        served.apply_chat_template(message, reasoning_effort="xhigh", tokenize=False)


def test_only_the_last_user_turn_carries_the_budget(tokenizers) -> None:
    contract, trained, served = tokenizers
    chat = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "<think>\nx\n</think>\n\n1"},
            {"role": "user", "content": "second"}]  # fmt: skip
    got = served.apply_chat_template(chat, thinking_budget=32, tokenize=False)
    want = trained.apply_chat_template([*chat[:2], {"role": "user", "content": contract.render("second", 32)}],
                                       tokenize=False)  # fmt: skip
    assert got == want and "first<|im_end|>" in got


def test_the_contract_round_trips_through_json_and_a_default_mode() -> None:
    contract = BudgetConfig(tiers_tokens=(16, 32), modes=MODES | {"medium": {"tier_tokens": 16}},
                            default_budget="low").contract()  # fmt: skip
    again = BudgetContract.from_json(contract.to_json())
    assert again == contract and again.render("Q") == "Q\n\nReasoning effort: low."


def test_format_specs_are_refused_when_the_contract_is_built() -> None:
    spec = BudgetConfig(tiers_tokens=(16, 32)).contract()
    with pytest.raises(PromptError, match="cannot reproduce format specs"):
        BudgetContract(spec.spec, PromptTemplate("mine.txt", "{problem} in {budget_tokens:,}"), spec.effort)


@pytest.mark.parametrize(
    ("modes", "error"),
    [
        ({"low": {"tier_tokens": 16}}, "must include `high`"),
        ({"high": {"tier_tokens": 17}}, "is not one of tiers_tokens"),
        ({"high": {"tier_tokens": 16, "share": 0.5}}, "exactly one of"),
    ],
)
def test_bad_modes_are_named(modes, error) -> None:
    with pytest.raises(ValueError, match=error):
        BudgetConfig(tiers_tokens=(16, 32), modes=modes)

"""YAML recipes with ``key=value`` overrides, validated into a ``RunConfig`` with errors that say the fix.

A recipe is a YAML file, or the name of one shipped in this package (``toy``, ``smoke``,
``experiments/bard-claims``; ``bard recipes`` lists them), so an installed pipeline runs from any folder.

An override's key is a dotted path (``sample.n_samples=2``; list items by index:
``ingest.sources.0.size=100``); its value is parsed as YAML (``[16, 32]``, ``true``, ``null``, ``0.5``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from bard_core.config import RunConfig


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``2e-5`` (no dot) is a string; YAML 1.2 and every user read it as a
    float. Values under ``trl:`` reach TRL untyped, so the difference would surface as a crash in torch."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


class ConfigError(ValueError):
    """A recipe or override that does not validate; the message lists every problem and its fix."""


RECIPES_DIR = Path(__file__).parent
"""The packaged recipes (a checkout's ``configs/`` links here)."""


def recipe_names() -> list[str]:
    """Every packaged recipe by name: ``toy``, ..., ``experiments/bard-claims``."""
    return sorted(p.relative_to(RECIPES_DIR).with_suffix("").as_posix() for p in RECIPES_DIR.rglob("*.yaml"))


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe file: an existing path as given, else a packaged recipe by name. ``configs/NAME.yaml`` also
    finds the packaged copy, so the paths written in the docs and older experiment files work outside a
    checkout."""
    path = Path(recipe)
    if path.is_file():
        return path
    name = path.as_posix().removesuffix(".yaml").removeprefix("configs/")
    packaged = RECIPES_DIR / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    raise ConfigError(
        f"recipe {recipe} is neither a file nor a packaged recipe; pass a YAML file or one of: "
        + ", ".join(recipe_names())
    )


def read_recipe(recipe: str | Path) -> dict[str, Any]:
    path = resolve_recipe(recipe)
    try:
        data = _yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"recipe {path} is not valid UTF-8 (byte {exc.start}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"recipe {path} must be a YAML mapping of sections (store:, ingest:, ...), got {type(data).__name__}"
        )
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not key=value (e.g. sample.n_samples=2)")
    try:
        value = _yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {override!r}: value is not valid YAML ({exc})") from exc
    parts = key.strip().split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        nxt = parts[depth + 1]
        if isinstance(node, list):
            node = _list_item(node, part, override)
            continue
        if part not in node or node[part] is None:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        index = int(last) if last.isdigit() else -1
        if not 0 <= index <= len(node):
            raise ConfigError(f"override {override!r}: index {last} out of range (list has {len(node)} items)")
        node[index : index + 1] = [value]
    else:
        node[last] = value


def _list_item(node: list[Any], part: str, override: str) -> Any:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {override!r}: {part!r} is not an index of a list with {len(node)} items")
    if node[int(part)] is None:
        node[int(part)] = {}
    return node[int(part)]


def load_config(recipe: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a recipe (None: all defaults), apply overrides, validate."""
    data = read_recipe(recipe) if recipe is not None else {}
    for override in overrides:
        apply_override(data, override)
    return validate_config(data, origin=str(recipe) if recipe is not None else "<defaults>")


def resolve_config(
    recipe: str | Path | None, overrides: Sequence[str] = (), config: RunConfig | Mapping[str, Any] | None = None
) -> RunConfig:
    """The run's config: a whole ``config`` when one is given (e.g. edited in the Prefect UI, which renders
    `RunConfig` as a form), else the recipe; ``overrides`` apply on top of either."""
    if config is None:
        return load_config(recipe, overrides)
    data = config.model_dump(mode="json") if isinstance(config, RunConfig) else dict(config)
    for override in overrides:
        apply_override(data, override)
    return validate_config(data, origin="the config parameter")


def validate_config(data: Mapping[str, Any], origin: str) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{origin}: {exc.error_count()} config error(s)"]
        for err in exc.errors():
            lines.append("  " + _explain(err))
        raise ConfigError("\n".join(lines)) from None


def _explain(err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "<root>"
    if err["type"] == "extra_forbidden":
        _, _, parents = _walk(loc[:-1])
        valid = sorted({name for model in parents for name in model.model_fields})
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown field.{hint} Valid fields here: {', '.join(valid)}."
    got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
    _, field, _ = _walk(loc)
    doc = " ".join(field.description.split()) if field is not None and field.description else None
    fix = f" Fix: {doc}" if doc else ""
    return f"{where}: {err['msg']}{got}.{fix}"


def _walk(loc: Sequence[Any]) -> tuple[type[BaseModel] | None, FieldInfo | None, list[type[BaseModel]]]:
    """Follow an error location through the config models: (owner model, field, models the field holds).

    Discriminated unions put the variant's tag in the location (``ingest.sources.0.toy.size``); a part
    that is no field but matches a candidate's ``kind`` narrows the candidates to that variant.
    """
    candidates: list[type[BaseModel]] = [RunConfig]
    owner: type[BaseModel] | None = None
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        model = next((m for m in candidates if str(part) in m.model_fields), None)
        if model is None:
            tagged = [m for m in candidates if _kind(m) == str(part)]
            if not tagged:
                return owner, None, candidates
            candidates = tagged
            continue
        owner, field = model, model.model_fields[str(part)]
        candidates = _models_in(field.annotation)
    return owner, field, candidates


def _kind(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("kind")
    return field.default if field is not None else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]

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
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except (ValueError, RecursionError) as exc:
        # An integer past Python's 4300-digit limit, or nesting past the stack: PyYAML lets both out raw.
        raise yaml.YAMLError(f"{type(exc).__name__}: {str(exc).split(';')[0]}") from exc


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
        raise ConfigError(f"override {_shown(override)} is not key=value (e.g. sample.n_samples=2)")
    try:
        value = _yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {_shown(override)}: value is not valid YAML ({exc})") from exc
    parts = key.strip().split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        _check_container(node, parts[:depth], override)
        if isinstance(node, list):
            node = _list_item(node, part, override)
            continue
        if part not in node or node[part] is None:
            node[part] = [] if _index(parts[depth + 1]) is not None else {}
        node = node[part]
    last = parts[-1]
    _check_container(node, parts[:-1], override)
    if isinstance(node, list):
        index = _index(last)
        if index is None or not 0 <= index <= len(node):
            raise ConfigError(
                f"override {_shown(override)}: index {_shown(last, 40)} out of range (list has {len(node)} items)"
            )
        node[index : index + 1] = [value]
    else:
        node[last] = value


def _index(part: str) -> int | None:
    """A list index in a dotted key: ASCII digits only ('²'.isdigit() holds, but int() refuses it), and few
    enough for int()."""
    return int(part) if part.isascii() and part.isdigit() and len(part) <= 18 else None


def _check_container(node: Any, path: Sequence[str], override: str) -> None:
    """A key can only go below a section or a list; below a value (``name.x=1`` where name is a string) the
    dotted path is wrong."""
    if not isinstance(node, dict | list):
        raise ConfigError(
            f"override {_shown(override)}: {'.'.join(path)} is {_shown(node)} (type {type(node).__name__}), not a "
            "section or a list, so nothing goes below it; shorten the key"
        )


def _list_item(node: list[Any], part: str, override: str) -> Any:
    index = _index(part)
    if index is None or index >= len(node):
        raise ConfigError(
            f"override {_shown(override)}: {_shown(part, 40)} is not an index of a list with {len(node)} items"
        )
    if node[index] is None:
        node[index] = {}
    return node[index]


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
    where = ".".join(_part(p) for p in loc) or "<root>"
    if err["type"] == "extra_forbidden":
        _, _, parents = _walk(loc[:-1])
        valid = sorted({name for model in parents for name in model.model_fields})
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown field.{hint} Valid fields here: {', '.join(valid)}."
    got = "" if err["type"] == "missing" else f" (got {_shown(err.get('input'))})"
    _, field, _ = _walk(loc)
    doc = " ".join(field.description.split()) if field is not None and field.description else None
    fix = f" Fix: {doc}" if doc else ""
    return f"{where}: {err['msg']}{got}.{fix}"


def _part(part: Any) -> str:
    """A location part as printed: a key with a line break or other control character (YAML allows any in a
    quoted key) in quotes, so one problem stays one line of the message."""
    text = str(part)
    return text if text.isprintable() and len(text) <= 80 else _shown(text, 80)


def _shown(value: Any, limit: int = 200) -> str:
    """``repr`` cut to ``limit`` characters: a message must stay readable when the value is a megabyte, and
    ``repr`` of an integer past 4300 digits raises."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<int of {value.bit_length()} bits>" if isinstance(value, int) else f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


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

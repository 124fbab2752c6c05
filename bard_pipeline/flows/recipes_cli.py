"""`bard recipes`: the recipes shipped in the package, by name (``bard run toy`` finds one from any folder)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bard_core.recipes import RECIPES_DIR, ConfigError, recipe_names, resolve_recipe

console = Console()


def _summary(name: str) -> str:
    """A recipe's first comment line: every shipped recipe opens with one saying what it is for."""
    for line in (RECIPES_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def recipes(
    name: Annotated[str | None, typer.Argument(help="Print this recipe's YAML (copy it to start your own)")] = None,
) -> None:
    """List the packaged recipes (names work wherever a recipe path does), or print one."""
    if name is not None:
        try:
            sys.stdout.write(resolve_recipe(name).read_text(encoding="utf-8"))
        except ConfigError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        return
    table = Table("recipe", "what it is")
    for recipe in recipe_names():
        table.add_row(recipe, _summary(recipe))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(recipes)

"""Command-line options that several `bard` commands share, defined once (flag, type and help)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Store root URL (default: the recipe's, else file://.bard/store)")
]
RecipeOpt = Annotated[Path | None, typer.Option("--recipe", help="Take the store root from this recipe")]
PrivateOpt = Annotated[bool, typer.Option("--private", help="Create the Hub repo private (when it is new)")]

"""The teacher watcher: where new teachers are announced, and which deployment it starts for them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bard_core.config.base import Section

Initial = Literal["trigger", "record"]


class StoreTeacherSource(Section):
    kind: Literal["store"] = "store"
    """Teachers registered as JSON documents under a prefix of the artifact store (`bard teachers register`)."""
    prefix: str = "teachers"
    """Prefix under the store root; each `<prefix>/<name>.json` holds {name, model, revision?}."""
    initial: Initial = "trigger"
    """What the first check does with what it finds: 'trigger' runs, or only 'record' it as seen."""


class OpenAITeacherSource(Section):
    kind: Literal["openai"] = "openai"
    """An OpenAI-compatible endpoint; a model id that appears in its /models list is a new teacher."""
    base_url: str
    """Endpoint root, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str | None = None
    """Environment variable holding the API key (never the key itself)."""
    match: str | None = None
    """Regular expression a model id must match to count (None: every id)."""
    initial: Initial = "record"
    """On the first check, record the models already served rather than distilling all of them."""
    timeout_s: float = Field(default=10.0, gt=0)
    """HTTP timeout."""


class HFTeacherSource(Section):
    kind: Literal["hf"] = "hf"
    """A Hugging Face model id; a new commit on its revision is a new teacher (needs network access)."""
    model_id: str
    """Hub model id, e.g. Qwen/QwQ-32B."""
    revision: str = "main"
    """Branch or tag to follow."""
    initial: Initial = "record"
    """On the first check, record the current commit rather than distilling it."""


TeacherSource = Annotated[StoreTeacherSource | OpenAITeacherSource | HFTeacherSource, Field(discriminator="kind")]


class WatchConfig(Section):
    sources: tuple[TeacherSource, ...] = (StoreTeacherSource(),)
    """Where to look for new teachers."""
    deployment: str = "bard-distill/distill"
    """Deployment started for a new teacher (flow name/deployment name)."""
    model_key: str = "sample.engine.model"
    """Override key that receives the new teacher's model (a catalog name, folder or hub id)."""
    until: str | None = None
    """Stop the triggered runs after this stage (None: the whole flow)."""

"""Inbox prompts: something of the reader's own that waits for them to act (rate a resolved report)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from plugins.context import HostContext


@dataclass(frozen=True)
class PromptContext:
    """Whose inbox is shown: the signed-in ``Principal``, the page's language, the host and how many fit."""

    principal: object
    locale: str
    host: HostContext
    limit: int = 5


class InboxPrompt(BaseModel):
    """One call to act shown above the reader's notifications until the thing is done.

    Texts are already in ``context.locale``. Prompts are not stored: a provider is asked each time the
    inbox is shown, so a prompt goes away as soon as what it asks for is done. ``url`` is where the
    action happens; an inbox item that links to the same page (without its ``#fragment``) shows the
    prompt's ``action`` beside it.
    """

    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=100, description="Stable within the mini-app, e.g. rate-report-12.")
    title: str = Field(min_length=1, max_length=200)
    action: str = Field(min_length=1, max_length=40, description="The button's words, e.g. 'Rate it'.")
    url: str = Field(max_length=500, pattern=r"^/[^/\\]", description="A page on this site, e.g. /m/<id>/...#rate.")

"""The interaction mini-app's answer to the one search box: answered questions and handbook articles."""

from __future__ import annotations

from miniapps.interaction import knowledge
from miniapps.interaction.models import SearchKind
from miniapps.interaction.service import declared_authorizer, reading_scope
from plugins.search import SearchQuery, SearchResult

_AUTHORIZER = declared_authorizer()


async def search_knowledge(query: SearchQuery) -> list[SearchResult]:
    """Officials' hits, best first, with or without diacritics; residents and anonymous callers get none."""
    principal = query.principal
    if principal is None or not principal.is_authenticated or not _AUTHORIZER.allows(principal, "interaction.questions.read"):
        return []
    # Async like the mini-app's own search route: a kept answer costs no thread hop and no connection.
    asked = knowledge.search_asked(query.text, scope=reading_scope(principal, _AUTHORIZER), limit=query.limit)
    hits = [] if asked is None else await knowledge.answer(query.host, asked)
    results = []
    for hit in hits:
        entry = hit.entry
        url = (f"/m/interaction/questions/{entry.ref_id}" if entry.kind is SearchKind.question
               else f"/m/interaction/handbook/{entry.ref_id}")
        prefix = "" if entry.kind is SearchKind.question else ("Cẩm nang: " if query.locale == "vi" else "Handbook: ")
        results.append(SearchResult(title=prefix + entry.title, url=url, snippet=entry.snippet, score=hit.score))
    return results

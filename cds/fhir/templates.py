"""Prefetch template tokens (CDS Hooks 2.0 "Prefetch tokens"): substitution into FHIR queries."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")

# The user-identifier tokens: derived from context.userId ("Practitioner/123") when its type
# matches (cds-hooks/docs#520).
USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class UnresolvableToken(Exception):
    """A token whose value the request does not carry: the key cannot be fetched."""


def _user_token(name: str, context: Mapping[str, Any]) -> str | None:
    user_id = context.get("userId")
    if not isinstance(user_id, str) or "/" not in user_id:
        return None
    resource_type, _, resource_id = user_id.partition("/")
    return resource_id if resource_type == USER_TOKENS[name] else None


def _token_value(token: str, context: Mapping[str, Any]) -> str | None:
    if token in USER_TOKENS:
        return _user_token(token, context)
    name = token.removeprefix("context.")
    if name == token or "." in name:
        return None  # only root-level context fields are tokens in 2.0
    value = context.get(name)
    # Only primitives: a Bundle or list is never a token.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


def render(template: str, context: Mapping[str, Any]) -> str:
    """Substitute every ``{{token}}``; values are percent-encoded (``/`` kept for reads such as
    ``{{context.userId}}``). Raises ``UnresolvableToken`` naming the token, never its value."""

    def substitute(match: re.Match[str]) -> str:
        value = _token_value(match.group(1), context)
        if value is None:
            raise UnresolvableToken(match.group(1))
        return quote(value, safe="/")

    return _TOKEN.sub(substitute, template)

"""Flattening FHIR JSON (resources and Bundles of any type) into resources by type."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

# A Bundle inside a Bundle (a document inside a collection) is followed this deep, no deeper.
_MAX_NESTING = 4


class ResourceIndex:
    """Resources by resourceType, deduplicated by id; the first copy of a resource wins.

    Callers add the hook's own context resources first: a draft order in ``context`` is newer
    than a copy of it the EHR may also return from a search.
    """

    def __init__(self) -> None:
        self._by_type: dict[str, dict[str, Json]] = {}
        self._anonymous = 0

    def add(self, value: Json, _depth: int = 0) -> None:
        """Add a resource, or every resource of a Bundle (searchset, collection, transaction,
        batch, document...). OperationOutcomes (search warnings) are not patient data."""
        resource_type = value.get("resourceType")
        if not isinstance(resource_type, str) or resource_type == "OperationOutcome":
            return
        if resource_type == "Bundle":
            if _depth < _MAX_NESTING:
                for resource in bundle_resources(value):
                    self.add(resource, _depth + 1)
            return
        self._add_resource(resource_type, value)

    def _add_resource(self, resource_type: str, resource: Json) -> None:
        resources = self._by_type.setdefault(resource_type, {})
        resource_id = resource.get("id")
        if not isinstance(resource_id, str) or not resource_id:
            # Without an id there is nothing to deduplicate on: keep every copy.
            self._anonymous += 1
            resource_id = f"\x00anonymous-{self._anonymous}"
        resources.setdefault(resource_id, resource)

    def as_dict(self) -> dict[str, list[Json]]:
        return {rtype: list(by_id.values()) for rtype, by_id in self._by_type.items()}


def bundle_resources(bundle: Json) -> list[Json]:
    """The resources of a Bundle's entries (entries without a resource are skipped)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    return [
        entry["resource"]
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
    ]


def is_operation_outcome(value: Json) -> bool:
    return value.get("resourceType") == "OperationOutcome"


def next_link(bundle: Json) -> str | None:
    """``Bundle.link[relation=next].url``, if any."""
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None

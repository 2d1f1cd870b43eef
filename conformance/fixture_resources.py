"""The conformance fixture's resources: four static ones and the template
``test://template/{id}/data``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

try:  # run as a script (conformance/server.py) or imported as conformance.fixture (tests)
    from fixture_builders import PNG, Json  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from conformance.fixture_builders import PNG, Json

READ_TTL_MS = 300_000  # resource contents never change


@dataclass(frozen=True)
class Resource:
    uri: str
    name: str
    description: str
    mime_type: str
    title: str | None = None
    text: str | None = None
    blob: str | None = None

    def listing(self) -> Json:
        item: Json = {"uri": self.uri, "name": self.name}
        if self.title:
            item["title"] = self.title
        return {**item, "description": self.description, "mimeType": self.mime_type}

    def contents(self) -> Json:
        body = {"text": self.text} if self.blob is None else {"blob": self.blob}
        return {"uri": self.uri, "mimeType": self.mime_type, **body}


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "test://static-text",
        "static-text",
        "A static text resource for testing",
        "text/plain",
        title="Static Text Resource",
        text="This is the content of the static text resource.",
    ),
    Resource(
        "test://static-binary",
        "static-binary",
        "A static binary resource (image) for testing",
        "image/png",
        title="Static Binary Resource",
        blob=PNG,
    ),
    Resource(
        "test://watched-resource",
        "watched-resource",
        "A resource that auto-updates every 3 seconds",
        "text/plain",
        title="Watched Resource",
        text="Watched resource content",
    ),
    Resource(
        "test://stateless-static-text",
        "Stateless Static Text",
        "A static text resource served on the draft path",
        "text/plain",
        text="Static text content from the stateless draft path.",
    ),
)
TEMPLATE = {
    "name": "template",
    "uriTemplate": "test://template/{id}/data",
    "title": "Resource Template",
    "description": "A resource template with parameter substitution",
    "mimeType": "application/json",
}
TEMPLATE_URI = re.compile(r"^test://template/(?P<id>[^/]+)/data$")


def read_template(uri: str) -> Json | None:
    match = TEMPLATE_URI.match(uri)
    if match is None:
        return None
    item_id = match["id"]
    data = {"id": item_id, "templateTest": True, "data": f"Data for ID: {item_id}"}
    return {"uri": uri, "mimeType": "application/json", "text": json.dumps(data)}

"""The OpenAPI entries of the event streams.

Django's async views are invisible to drf-spectacular, so each stream module documents its endpoint here
when it is imported (the URLconf imports them before any schema is built), and the schema hook in
canvas_project.api.openapi writes them into the document. The project core holds the list; the apps fill it.
"""

from __future__ import annotations

# GET streams under a deal: {path, operation_id, summary, description, tag, extra_path_params?}
DEAL_STREAMS: list[dict] = []
# streams answered to a POST with a JSON body: {path, method, operation_id, summary, description, tag, request}
POSTED_STREAMS: list[dict] = []


def document_deal_stream(**endpoint) -> None:
    if all(known["path"] != endpoint["path"] for known in DEAL_STREAMS):
        DEAL_STREAMS.append(endpoint)


def document_posted_stream(**endpoint) -> None:
    if all(known["path"] != endpoint["path"] for known in POSTED_STREAMS):
        POSTED_STREAMS.append(endpoint)

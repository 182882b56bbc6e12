"""POST /api/upload: accept a CSV of products and image URLs, answer 202 with the request id."""

import azure.functions as func

from shared import functions_adapter as adapter
from shared import upload


def main(req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
    with adapter.http_invocation("upload_http", context):
        try:
            deps = adapter.dependencies()
            accepted = upload.accept_upload(deps, adapter.upload_input(req, deps.settings))
        except Exception as exc:
            return adapter.error_response(exc)
        return adapter.accepted_response(req, accepted)

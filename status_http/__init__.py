"""GET /api/status/{request_id}: progress as JSON, per-image results, or the output CSV."""

import azure.functions as func

from shared import functions_adapter as adapter
from shared import status


def main(req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
    with adapter.http_invocation("status_http", context):
        try:
            answer = status.get_status(adapter.dependencies(), adapter.status_query(req))
        except Exception as exc:
            return adapter.error_response(exc)
        return adapter.status_response(answer)

"""DELETE /api/requests/{request_id}: cancel a request (unstarted images skipped, started ones finish)."""

import azure.functions as func

from shared import cancel
from shared import functions_adapter as adapter


def main(req: func.HttpRequest) -> func.HttpResponse:
    try:
        answer = cancel.cancel_request(adapter.dependencies(), req.route_params.get("request_id", ""))
    except Exception as exc:
        return adapter.error_response(exc)
    return adapter.cancel_response(answer)

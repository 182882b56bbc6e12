"""GET /api/health: database, Redis, queues and output storage, each with its status; 200 or 503."""

import azure.functions as func

from shared import functions_adapter as adapter


def main(req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
    with adapter.http_invocation("health_http", context):
        return adapter.health_response(adapter.health_report())

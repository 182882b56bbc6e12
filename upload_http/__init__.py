"""POST /api/upload: accept a CSV of products and image URLs, answer 202 with the request id.

The fan-out starts with one message through the ``fanout`` output binding, which the host writes
when the function returns (and which wakes the fan-out queue's listener at once).
"""

import azure.functions as func

from shared import functions_adapter as adapter
from shared import upload


def main(req: func.HttpRequest, fanout: func.Out[str], context: func.Context | None = None) -> func.HttpResponse:
    with adapter.http_invocation("upload_http", context):
        try:
            deps = adapter.dependencies()
            accepted = upload.accept_upload(deps, adapter.upload_input(req, deps.settings))
        except Exception as exc:
            return adapter.error_response(exc)
        if accepted.fanout_message is not None:
            fanout.set(accepted.fanout_message)
        return adapter.accepted_response(req, accepted)

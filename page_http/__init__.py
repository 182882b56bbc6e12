"""GET /api/ui: the upload page (choose a CSV and options, watch progress, download the output CSV)."""

import azure.functions as func

from shared import functions_adapter as adapter
from shared.upload_page import upload_page


def main(req: func.HttpRequest) -> func.HttpResponse:
    try:
        page = upload_page()
    except Exception as exc:
        return adapter.error_response(exc)
    return adapter.page_response(page)

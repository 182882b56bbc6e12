import json

import azure.functions as func


async def main(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "function": "echo",
        "method": req.method,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "url": req.url,
        "x_test": req.headers.get("x-test"),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")

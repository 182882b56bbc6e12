import json

import azure.functions as func


def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    body = json.dumps({"function": "thing", "tid": req.route_params["tid"], "method": req.method})
    res.set(func.HttpResponse(body, status_code=200, mimetype="application/json"))

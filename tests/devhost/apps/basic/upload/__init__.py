import hashlib
import json

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    if not req.files:
        return func.HttpResponse(json.dumps({"size": len(req.get_body())}), mimetype="application/json")
    upload = req.files["file"]
    data = upload.read()
    payload = {
        "filename": upload.filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": req.form.get("note"),
    }
    response = func.HttpResponse(json.dumps(payload), status_code=202, mimetype="application/json")
    response.headers.add("X-Multi", "one")
    response.headers.add("X-Multi", "two")
    return response

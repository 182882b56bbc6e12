import azure.functions as func


def main(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    kind = req.route_params["kind"]
    text = req.get_body().decode()
    if kind == "text":
        out.set(text)
    elif kind == "list":
        out.set(text.split(","))
    elif kind == "bytes_in_list":
        out.set([text.encode()])  # type: ignore[list-item]
    elif kind == "queue_message":
        out.set(func.QueueMessage(body=text))  # type: ignore[arg-type]
    return func.HttpResponse("emitted", status_code=202)

import azure.functions as func


def main(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    text = req.get_body().decode()
    count = int(req.params.get("many", "1"))
    out.set([f"{text}#{i}" for i in range(count)] if count > 1 else text)
    if req.params.get("fail") == "1":
        raise ValueError("failing after setting the output binding")
    return func.HttpResponse("queued", status_code=202)

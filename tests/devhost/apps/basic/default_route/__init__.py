import azure.functions as func


def main(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = f"{context.function_name}:{req.get_body().decode()}"
    return func.HttpResponse(body, status_code=201, headers={"X-Invocation": context.invocation_id})

import azure.functions as func
import module_that_does_not_exist_anywhere  # noqa: F401


def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("never")

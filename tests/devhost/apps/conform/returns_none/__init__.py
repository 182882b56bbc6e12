import azure.functions as func


def main(req: func.HttpRequest) -> None:
    return None

import azure.functions as func
import module_that_does_not_exist_anywhere  # noqa: F401


def main(msg: func.QueueMessage) -> None:
    pass

import azure.functions as func


def main(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set("next:" + msg.get_body().decode())

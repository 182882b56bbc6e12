def main(req):
    return None

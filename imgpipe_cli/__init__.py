"""``imgpipe``: the command-line client of the imgpipe HTTP API (upload a CSV, watch it, cancel it).

It talks to the service only over HTTP, so it imports nothing from the app (``shared``) and runs
against a local host or a deployed Function App alike.
"""

"""Development tooling: local Azurite and Redis, the app on the local host, image and webhook servers,
sample data and the OpenAPI checker. Used by ``make run`` / ``make demo``, the benchmarks and the
tests (through ``devtools.pytest_plugin``); never deployed, and never imported by ``shared/``.
"""

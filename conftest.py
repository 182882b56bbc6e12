"""The root of the test suite: the shared fixtures come from the development tooling package."""

pytest_plugins = ["devtools.pytest_plugin", "devtools.suite_schedule"]

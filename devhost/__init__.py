"""A local Azure Functions host for folder-model Python apps (a stand-in for Core Tools).

App-agnostic: it discovers function folders and runs them with the real host's semantics; it never
imports the app by name. Run it as ``python -m devhost``; see docs/DEVHOST.md.
"""

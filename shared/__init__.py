"""imgpipe domain code: everything the function folders call into.

Modules here never import ``azure.functions`` (only ``shared.functions_adapter`` does) and never
import the local host.
"""

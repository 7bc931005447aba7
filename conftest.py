"""Load the binder-harness pytest plugin when running from a checkout.

An installed package registers it through its pytest11 entry point; loading it
twice would register every option twice.
"""
import importlib.metadata
import os


def _installed() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.name == "binder_harness" for ep in importlib.metadata.entry_points(group="pytest11"))


pytest_plugins = [] if _installed() else ["harness.pytest_plugin"]

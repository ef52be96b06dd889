"""Implementations of ``cairn.core.ports``. Only ``cairn.app`` and ``cairn.cli`` choose among them."""

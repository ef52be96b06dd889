"""Cairn: one self-hosted place for AI agents' files and conversations."""

__version__ = "0.1.0"

"""Errors a tool raises when retrying the same call cannot help."""

from __future__ import annotations


class PermanentToolError(Exception):
    """Bad input or a business rule said no: a plan executor should replan instead of retrying."""

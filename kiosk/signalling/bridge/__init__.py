"""The media bridge for controlled calls: forwards encoded media, never decodes (principle 3)."""

from .bridge import Bridge, BridgeError, BridgeFailure, Leg

__all__ = ["Bridge", "BridgeError", "BridgeFailure", "Leg"]

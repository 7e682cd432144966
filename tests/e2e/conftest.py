"""Fixtures of the end-to-end tier: the heartbeat monitor of the alert tests."""

from alert_world import monitor

__all__ = ["monitor"]

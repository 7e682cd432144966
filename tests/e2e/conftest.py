"""Fixtures of the end-to-end tier: the heartbeat monitor of the alert tests, a
user's site and one with three collections (support/login_site.py)."""

from alert_world import monitor
from login_site import site, three_collections

__all__ = ["monitor", "site", "three_collections"]

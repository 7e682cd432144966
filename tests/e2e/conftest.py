"""Fixtures of the end-to-end tier: the world and the heartbeat monitor of the
alert tests (support/alert_world.py), a user's site and one with three
collections (support/login_site.py), and the notification servers
(support/notify_servers.py)."""

from alert_world import monitor, world
from disk_fixtures import small_disk
from login_site import site, three_collections
from notify_servers import http_tarpit, json_hook, smtp_tarpit

__all__ = [
    "http_tarpit",
    "json_hook",
    "monitor",
    "site",
    "small_disk",
    "smtp_tarpit",
    "three_collections",
    "world",
]

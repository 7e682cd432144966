"""Alerts: the pure policy (new, repeated, resolved), the wording of a mail, and
their delivery over SMTP and the heartbeat.
"""

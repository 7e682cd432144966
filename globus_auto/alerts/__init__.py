"""Alerts: the pure policy (new, repeated, resolved; per channel; the grace),
the wording, and their delivery over the channels (mail, Apprise, a command
hook) and the heartbeat, each call with a deadline.
"""

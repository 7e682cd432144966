"""Alert channels: mail, Apprise URLs, a command hook; one plain module each.

Every channel module has the same few names (borgmatic's monitoring hooks are
the model): ``PREFIX``, ``configured(settings, job)`` (its channel ids for a
job, or for any job with None), ``describe(settings, channel)`` (where it goes,
without secrets), ``verify(settings, channel)`` (what can be known without
sending: for ``check``), ``send(settings, channel, notice, timeout)`` and
``send_test(settings, channel, timeout)``; the last three raise ``NotifyError``.
Adding a channel is adding a file and naming it in :mod:`.registry`.
"""

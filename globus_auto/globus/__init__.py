"""Everything that touches globus-sdk: app and tokens, consents, the gateway.

Importing this package imports no globus-sdk: a run with nothing to send
never pays for it.
"""

"""The engine: a session of jobs, one run of one job, the scan and the plan.

Plain functions over data and the adapters passed in; nothing here prompts,
prints or imports click. The plan (:mod:`.plan`) is pure.
"""

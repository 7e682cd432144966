"""The settings, in three steps: find and execute the config file (:mod:`.source`),
validate it (:mod:`.validate`), as frozen dataclasses (:mod:`.model`).
"""

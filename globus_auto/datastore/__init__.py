"""The datastore: one SQLite file, ``datastore``, in the state folder.

:mod:`.opening` opens (or moves aside) the file, :mod:`.store` holds the
queries, :mod:`.records` the values that cross its boundary.
"""

"""``python -m globus_auto`` is the same as the ``globus-auto`` command."""

from globus_auto.main import main

if __name__ == "__main__":
    main()

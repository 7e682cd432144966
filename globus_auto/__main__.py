"""``python -m globus_auto`` is the same as the ``globus-auto`` command."""

from globus_auto.cli.group import cli

if __name__ == "__main__":
    cli()

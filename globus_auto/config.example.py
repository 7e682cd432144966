# globus-auto configuration. `globus-auto init` writes this file, private
# (0600), to ~/.config/globus_auto/config.py (or to --config PATH); or copy it:
#
#     mkdir -p ~/.config/globus_auto
#     cp config.example.py ~/.config/globus_auto/config.py
#     chmod 600 ~/.config/globus_auto/config.py
#
# It is Python, executed on every run, so globus-auto refuses it when it is
# writable by group or others (fix: chmod go-w) or owned by another user.
# Found by `--config PATH`, else $GLOBUS_AUTO_CONFIG, else config.py in the
# user config folder (~/.config/globus_auto/ on Linux).
#
# Names starting with "_", imports and functions are ignored; any other
# UPPER_CASE name that globus-auto does not know is an error ("did you mean ...?").
# Check the file with: globus-auto check

# ---------------------------------------------------------------------------
# One job, in the names of the original globus_auto (it is called "default").
# ---------------------------------------------------------------------------

# UUID of the source collection (copy it from app.globus.org, "Collections").
SRC_ID = "00000000-0000-0000-0000-000000000001"
# Absolute path of the source directory. It is both the folder scanned on this
# machine and the path on the source collection.
SRC_DIR = "/global/cfs/cdirs/myproject/data"
# Only when the two differ (a collection whose root is not "/", or the data
# mounted elsewhere here): the absolute folder to scan on this machine.
# SRC_LOCAL_DIR = "/mnt/beamline/data"

# UUID of the destination collection, and the absolute directory on it that is
# kept a superset of SRC_DIR (created if missing; nothing there is ever deleted).
DST_ID = "00000000-0000-0000-0000-000000000002"
DST_DIR = "/archive/myproject/data"

# Required: the Client UUID of your app registration
# (app.globus.org/settings/developers). A native app needs a one-time
# `globus-auto login`; a service account (confidential client) also needs
# CLIENT_SECRET below.
CLIENT_ID = "00000000-0000-0000-0000-000000000003"

# E-mail alerts: From address, and who is told (a list, or one string).
EMAIL_SENDER = "globus-auto@myhost.example.org"
EMAIL_RECIPIENTS = ["me@example.org"]
# SMTP server (default "localhost").
EMAIL_HOST = "smtp.example.org"

# Accepted for compatibility with the original LBNL globus_auto script and
# ignored: globus-auto is an installed command that cron runs directly, and it
# keeps its own login, datastore and log in STATE_DIR and writes its own mail
# subjects and times (`globus-auto upgrade --from DIR` takes an old folder over).
# CODE_PATH = "/path/to/globus_auto"
# PYTHON_PATH = "/usr/bin/python3"
# EMAIL_SUBJECT, TOKEN_PATH, SHELF_NAME, SHELF_PATH, SHELF_TIMESTAMP_KEY,
# SHELF_TRIE_KEY, LOG_PATH, DATE_FORMAT

# ---------------------------------------------------------------------------
# Optional settings (the values shown are the defaults unless stated).
# ---------------------------------------------------------------------------

# Service account secret (client credentials; no login step). Better kept out
# of this file: the environment variable GLOBUS_AUTO_CLIENT_SECRET provides it
# and takes precedence.
# CLIENT_SECRET = "..."

# One folder for the datastore, tokens, lock and log (default: the user state
# folder, ~/.local/state/globus_auto on Linux). Absolute; "~" is expanded.
# Deleting its `datastore` file makes the next run send everything again.
# STATE_DIR = "/home/me/.local/state/globus_auto"

# Glob patterns, relative to the source root, of files and directories not to
# send (a matching directory is skipped whole).
# EXCLUDE = ["*.tmp", ".snapshot", "scratch/*"]

# Seconds a file must be left unmodified before it is sent (default 0), so
# files still being written are picked up by a later run.
# MIN_AGE = 300

# When more files than this changed, send the whole directory as one recursive
# checksum sync instead of a list of files.
# RECURSIVE_THRESHOLD = 1000

# SMTP details: port (default 465 for "ssl", 587 for "starttls", else 25),
# security ("starttls", "ssl" or "none"), login name.
# EMAIL_PORT = 587
# EMAIL_SECURITY = "starttls"
# EMAIL_USERNAME = "me"
# The SMTP password is never written here (EMAIL_PASSWORD is an error): it is
# read from this file (mode 0600; one trailing newline is ignored) ...
# EMAIL_PASSWORD_FILE = "/home/me/.config/globus_auto/smtp-password"
# ... or else from this environment variable.
# EMAIL_PASSWORD_ENV = "GLOBUS_AUTO_EMAIL_PASSWORD"

# An alert is mailed when a problem appears, repeated at most every this many
# hours while it lasts, and followed by one "resolved" mail.
# ALERT_REPEAT_HOURS = 24
# A task still INACTIVE or ACTIVE after this many hours is alerted.
# TASK_STUCK_HOURS = 24
# Pinged after every run (healthchecks.io style: the URL on success, the URL
# + "/fail" on failure), so a monitor notices when runs stop altogether.
# HEARTBEAT_URL = "https://hc-ping.com/your-check-uuid"
# Refresh the Globus tokens when unused for this many days, so they never lapse.
# AUTH_KEEPALIVE_DAYS = 30
# Globus itself mails you about every task unless told not to. globus-auto
# turns that off for tasks that succeed (it tracks delivery itself), and for
# failed or suspended (INACTIVE) tasks whenever it has EMAIL_RECIPIENTS to
# alert itself; with no recipients, Globus's mails are the ones you get. Set
# any of these to True or False to decide yourself (None: as described).
# GLOBUS_NOTIFY_ON_SUCCEEDED = None
# GLOBUS_NOTIFY_ON_FAILED = None
# GLOBUS_NOTIFY_ON_INACTIVE = None

# ---------------------------------------------------------------------------
# Several jobs in one file. May be combined with the job above (named
# "default"). Names are unique, letters, digits, ".", "_" and "-" only.
# Each job may override src_local_dir, exclude, min_age, recursive_threshold
# and email_recipients; otherwise it uses EXCLUDE, MIN_AGE,
# RECURSIVE_THRESHOLD and EMAIL_RECIPIENTS above.
# ---------------------------------------------------------------------------

# TRANSFERS = [
#     {
#         "name": "raw",
#         "src_id": "00000000-0000-0000-0000-000000000001",
#         "src_dir": "/data/raw",
#         "dst_id": "00000000-0000-0000-0000-000000000002",
#         "dst_dir": "/archive/raw",
#         "exclude": ["*.partial"],
#         "min_age": 600,
#         "recursive_threshold": 5000,
#     },
#     {
#         "name": "processed",
#         "src_id": "00000000-0000-0000-0000-000000000004",
#         "src_dir": "/processed",  # path on the collection ...
#         "src_local_dir": "/mnt/gcp/processed",  # ... and the folder here
#         "dst_id": "00000000-0000-0000-0000-000000000002",
#         "dst_dir": "/archive/processed",
#         "email_recipients": ["team@example.org"],
#     },
# ]

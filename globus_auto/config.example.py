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
# The zero UUIDs in this file are placeholders: they are refused until replaced.
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
# Every time setting takes a number in the unit its name or text gives, or a
# text such as "90s", "15m", "6h" or "2d" (s, m, h, d), as `cron --every` does.
# ---------------------------------------------------------------------------

# Service account secret (client credentials; no login step). Better kept out
# of this file: the environment variable GLOBUS_AUTO_CLIENT_SECRET provides it
# and takes precedence.
# CLIENT_SECRET = "..."

# One folder for the datastore, tokens, lock and log (default: the user state
# folder, ~/.local/state/globus_auto on Linux). Absolute; "~" is expanded.
# Deleting its `datastore` file makes the next run send everything again.
# STATE_DIR = "/home/me/.local/state/globus_auto"

# Files and folders not to send, in the rules of .gitignore (as rsync, restic
# and rclone users know them), over paths relative to the source root: a name
# without "/" matches at any depth ("cache", "*.tmp"), a leading "/" only at
# the top ("/scratch"), "*" stops at "/", "**" crosses folders ("raw/**/*.log"),
# a trailing "/" means folders only ("build/"), "!" re-includes ("!keep.tmp").
# An excluded folder is not entered. When every pattern is a name without "/"
# or "!", they go to Globus as filter rules too, so a whole-folder transfer
# stays possible (else lists of files are sent). `globus-auto check`
# warns about a pattern that matches nothing; one that excludes everything
# (["*"]) is refused.
# EXCLUDE = ["*.tmp", ".snapshot/", "/scratch"]

# How long a file must be left unmodified before it is sent (default 0; a
# number is seconds; at most 30d), so files still being written are picked up
# by a later run.
# MIN_AGE = "5m"

# When more files than this changed, send the whole directory as one recursive
# checksum sync instead of a list of files.
# RECURSIVE_THRESHOLD = 1000

# Tasks a job may have in flight at once (default 2, 1 to 3): new files go in
# a new task while an earlier, large one still runs. At most 3 because Globus
# runs at most 3 tasks of a user at once and queues the rest. A job's second
# and third task wait while this config's jobs have 3 in flight together.
# MAX_TASKS_IN_FLIGHT = 2

# Threads the scan lists folders, stats files and reads changed files with (1
# to 256; 1 walks in one thread). On NFS, Lustre or GPFS every stat is a round
# trip to a metadata server that answers many at once; the threads start only
# when calls are seen waiting, so a fast local disk is walked in one thread.
# SCAN_THREADS = 16

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
# A problem that can pass by itself (a collection or Globus not answering, the
# source not mounted, an unexpected error) is alerted only once this many runs
# in a row have met it; a login, a failed task or a data problem at once.
# ALERT_AFTER_FAILURES = 2
# A task still INACTIVE or ACTIVE after this many hours is alerted.
# TASK_STUCK_HOURS = 24
# Pinged when a run begins ("/start") and ends (healthchecks.io style: the
# URL + "/<exit code>" on a healthchecks URL, else the URL on success and the
# URL + "/fail" on failure, with the run's last log lines), so a monitor
# notices when runs fail, hang or stop altogether.
# HEARTBEAT_URL = "https://hc-ping.com/your-check-uuid"
# Alerts also go to these Apprise URLs (Slack, Teams, Mattermost, ntfy,
# PagerDuty, Matrix, ...; github.com/caronc/apprise/wiki), with the words of the
# mail. Needs: pip install 'globus-auto[notify]'.
# NOTIFY_URLS = ["ntfy://ntfy.sh/my-lab-transfers", "slack://T000/B000/XXXX"]
# ... and run this command for each (no shell; the alert is in GLOBUS_AUTO_EVENT,
# _JOB, _KIND, _SUMMARY, _WHAT_HAPPENED, _WHAT_TO_DO, _PENDING_FILES, ... and the
# mail's text on standard input; exit 0 means delivered).
# ON_ALERT_COMMAND = ["/usr/local/bin/open-ticket", "--queue", "data"]
# Seconds each mail, ping, Apprise message or command may take in all; a run's
# alerts take at most 5 times this together (the rest go with the next run).
# NOTIFY_TIMEOUT = 20
# Seconds each call to Globus may take in all, its retries included; a call
# cut off ends the run with exit 6 and the next run retries. Raise it if
# Globus needs longer to list a very large folder.
# GLOBUS_TIMEOUT = 300
# Prometheus metrics (per job: last run and success, files and bytes waiting,
# tasks in flight, open alerts, exit code, scan), rewritten after every run,
# for node_exporter's textfile collector (its folder; the name must end .prom).
# METRICS_FILE = "/var/lib/node_exporter/textfile_collector/globus_auto.prom"
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
# Each job may override src_local_dir, exclude, min_age, recursive_threshold,
# email_recipients and max_tasks_in_flight; otherwise it uses EXCLUDE, MIN_AGE,
# RECURSIVE_THRESHOLD, EMAIL_RECIPIENTS and MAX_TASKS_IN_FLIGHT above.
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
#         "max_tasks_in_flight": 1,  # bulk data: one task at a time
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

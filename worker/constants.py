"""Names other programs rely on: queues, task names, Redis key parts, headers.

One place per fact: everything else imports these. Task names are explicit and
stable so that renaming a module never orphans a queued message or a beat entry.
"""

from typing import Final

#: Queue for publishing; workers for it are never shared with maintenance.
QUEUE_POSTS: Final = "posts"
#: Queue for OAuth token refreshes.
QUEUE_TOKENS: Final = "tokens"
#: Queue for backups, archival and other periodic housekeeping.
QUEUE_MAINTENANCE: Final = "maintenance"
#: Queue on which poisoned and exhausted jobs are recorded.
QUEUE_DEAD_LETTER: Final = "dead_letter"

ALL_QUEUES: Final = (QUEUE_POSTS, QUEUE_TOKENS, QUEUE_MAINTENANCE, QUEUE_DEAD_LETTER)

#: Task-name prefix -> queue. A task whose name matches no prefix is a bug.
ROUTE_PREFIXES: Final = {
    "posts.": QUEUE_POSTS,
    "tokens.": QUEUE_TOKENS,
    "maintenance.": QUEUE_MAINTENANCE,
    "deadletter.": QUEUE_DEAD_LETTER,
}

TASK_PUBLISH: Final = "posts.publish"
TASK_DISPATCH_DUE: Final = "posts.dispatch_due"
TASK_REFRESH_EXPIRING: Final = "tokens.refresh_expiring"
TASK_REFRESH: Final = "tokens.refresh"
TASK_BACKUP: Final = "maintenance.backup"
TASK_ARCHIVE: Final = "maintenance.archive"
TASK_HEARTBEAT: Final = "maintenance.heartbeat"
TASK_RECORD_DEAD_LETTER: Final = "deadletter.record"

#: Outcomes recorded in post_attempts.outcome.
OUTCOME_PUBLISHED: Final = "published"
OUTCOME_FOUND: Final = "found_existing"  # an earlier attempt had published it after all

PLATFORMS: Final = ("instagram", "facebook", "youtube")

#: Header an API sets to follow one request through every job it causes.
HEADER_REQUEST_ID: Final = "x-request-id"

#: Redis key for the time of beat's last heartbeat (seconds since the epoch).
KEY_BEAT_HEARTBEAT: Final = "beat:heartbeat"

#: application_name every Herald connection reports to PostgreSQL.
PG_APPLICATION_NAME: Final = "herald"

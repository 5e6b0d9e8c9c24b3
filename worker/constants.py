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

# Redis keys. Every key Herald writes is ``<namespace>:<part>:...``, joined by
# ``Settings.key``; these are all the parts (tests/unit/test_redis_keys.py holds other
# modules to that). The broker's lists are ``<namespace>:<queue>`` (kombu's
# global_keyprefix). Running deployments hold these keys: a value here never changes.

#: Redis key for the time of beat's last heartbeat (seconds since the epoch).
KEY_BEAT_HEARTBEAT: Final = "beat:heartbeat"
#: A publish-path account cache entry: ``<namespace>:account:<account id>`` (JSON).
KEY_ACCOUNT: Final = "account"
#: Suffix of an account cache entry's generation counter: ``...:account:<id>:gen``.
KEY_ACCOUNT_GENERATION: Final = "gen"
#: Deployment-wide locks (``worker.coordination.locks``): ``<namespace>:lock:<name>``.
KEY_LOCK: Final = "lock"
#: Lock name of the backup job.
LOCK_BACKUP: Final = "backup"
#: Lock name of the archival job.
LOCK_ARCHIVE: Final = "archive"
#: Lock name prefix of one account's token refresh: ``...:lock:token-refresh:<account id>``.
LOCK_REFRESH: Final = "token-refresh"
#: A platform's shared circuit-breaker state (a hash): ``<namespace>:breaker:<platform>``.
KEY_BREAKER: Final = "breaker"
#: A task id's delivery count (poison detection): ``<namespace>:deliveries:<task id>``.
KEY_DELIVERIES: Final = "deliveries"
#: An account's transient token-refresh failures: ``<namespace>:tokens:failures:<id>``.
KEY_TOKEN_FAILURES: Final = ("tokens", "failures")
#: Everything the rate limiter stores: ``<namespace>:rl:...``.
KEY_RATELIMIT: Final = "rl"
#: The limit overrides hash: ``<namespace>:rl:config``.
KEY_RATELIMIT_CONFIG: Final = "config"
#: A platform's app-wide admission log: ``<namespace>:rl:{<platform>}:app``.
KEY_RATELIMIT_APP: Final = "app"
#: One account's admission log: ``<namespace>:rl:{<platform>}:acct:<account id>``.
KEY_RATELIMIT_ACCOUNT: Final = "acct"
#: Suffix of a scope's penalty ("blocked until") twin: ``<log key>:block``.
KEY_RATELIMIT_BLOCK: Final = "block"
#: celery-redbeat's key prefix (schedule entries, beat leadership lock) under the
#: namespace: ``<namespace>:redbeat:``; redbeat builds its own keys after it.
KEY_REDBEAT: Final = "redbeat"

#: application_name every Herald connection reports to PostgreSQL.
PG_APPLICATION_NAME: Final = "herald"

"""Herald's errors: one root, a branch per way a request can end badly.

Every exception class Herald defines descends from :class:`HeraldError`, so a caller
that wants "anything Herald refused or could not do" catches one class, and the
`herald` command turns each branch into one line on stderr and an exit status
(:mod:`worker.cli.failures`). A class that was a builtin error before keeps that
builtin as a second base (``HeraldClientError`` is still a ``ValueError``), so code
catching the builtin behaves as before.

The whole tree (module of each class in brackets)::

    HeraldError
    ├── RefusedError                   `herald: <message>`, exit 1
    │   ├── HeraldClientError (ValueError)          [worker.errors; worker.client re-exports]
    │   │   ├── InvalidInputError
    │   │   │   └── ScheduledInPastError
    │   │   ├── AccountInactiveError
    │   │   ├── UnknownPostError
    │   │   └── PostNotModifiableError                      [worker.client]
    │   ├── AccountError (ValueError)                       [worker.db.accounts]
    │   │   ├── AccountExists
    │   │   └── AccountNotFound (also a HeraldClientError;
    │   │                        worker.client.UnknownAccountError is this class)
    │   ├── LimitSpecError (ValueError)                     [worker.resilience.limits_config]
    │   ├── InvalidPublishInputError (ValueError)           [worker.publishing.publish]
    │   ├── DeadLetterError                                 [worker.deadletter.letter]
    │   │   └── InvalidLetterError
    │   ├── AlreadyRunningError                             [worker.coordination.locks]
    │   ├── TokenDecryptError                               [worker.security.cipher]
    │   ├── BackupError (RuntimeError)                      [worker.backups.dump]
    │   ├── BackupDecryptError                              [worker.backups.crypto]
    │   ├── PgToolsError (RuntimeError)                     [worker.backups.pgtools]
    │   ├── ReplaceError (RuntimeError)                     [worker.backups.replace]
    │   ├── RestoreRefusedError                             [worker.backups.restore]
    │   ├── ArchiveMismatchError                            [worker.archival.posts]
    │   ├── ExportError                                     [worker.archival.export]
    │   ├── PartitionBusyError                              [worker.archival.attempts]
    │   └── VideoRejectedError (ValueError)                 [worker.platforms.sandbox.google]
    ├── UnavailableError               a server Herald needs does not answer, exit 69
    │   └── EmbeddedError (RuntimeError)                    [worker.local.embedded]
    ├── ConfigurationError             settings that cannot work, exit 2
    │   └── SettingsError                                   [worker.settings]
    ├── PlatformError                  what a platform's API answered (or did not)
    │   │                                                   [worker.platforms.errors]
    │   ├── TransientError
    │   │   └── OutcomeUnknownError
    │   ├── RateLimitedError
    │   ├── AuthExpiredError
    │   └── PermanentError
    └── BreakerOpen (pybreaker.CircuitBreakerError)     a deferral, not a failure
                                                            [worker.resilience.breaker]

A task never lets a :class:`RefusedError` crash-loop: the publish path and the
dead-letter receivers record it. Outside the CLI nothing maps these to exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence


class HeraldError(Exception):
    """The root: anything Herald refused, could not reach, or was told by a platform."""


class RefusedError(HeraldError):
    """A request Herald will not carry out as given: bad input, an unknown id, a state
    that forbids it, a run already going on. The message is for the person who asked
    (the CLI prints it as ``herald: <message>`` and exits 1)."""


class UnavailableError(HeraldError):
    """A server Herald needs (PostgreSQL, Redis, the broker) does not answer.

    The message names the server and where it was looked for, with any password
    masked; ``server`` names it alone when known. Nothing is wrong with the request:
    trying again once the server is back is the fix (the CLI exits 69, EX_UNAVAILABLE).
    """

    def __init__(self, message: str, *, server: str | None = None) -> None:
        super().__init__(message)
        self.server = server


class ConfigurationError(HeraldError):
    """Settings Herald cannot work with; ``problems`` has one line per problem
    (the CLI prints them under ``herald: configuration error`` and exits 2)."""

    def __init__(self, problems: Sequence[str] | str) -> None:
        # A str is one problem (as when the error is unpickled from its message).
        listed = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(listed))
        self.problems = listed


class HeraldClientError(RefusedError, ValueError):
    """A refused request; the message names the field and what is wrong with it.

    :mod:`worker.client` raises its subclasses (and re-exports this name); it lives here
    so that the accounts repository's :class:`~worker.db.accounts.AccountNotFound` can
    be the client's ``UnknownAccountError`` too without the repository importing the
    client. ``problems`` lists every wrong field when there are several.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]

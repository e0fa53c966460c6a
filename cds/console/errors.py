"""Every failure of a command is one line on stderr and a non-zero exit code, never a traceback.

``run_guarded`` maps the errors kap-cds raises on purpose (and the usual operating-system ones) to
that line; a broken pipe (``kap-cds audit export | head``) ends the command quietly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from cds.errors import CdsError, RuleLoadError
from cds.startup import ConfigError

EXIT_FAILED = 1  # the command ran and found problems (a failing fixture, an unreachable store)
EXIT_USAGE = 2  # the command could not run: bad arguments, files or configuration
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left


class CliError(Exception):
    """A problem the person running the command can fix; the message names the file, setting
    or id."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(message: str) -> str:
    """Multi-line messages (a YAML parser's, with its caret line) folded into one line."""
    parts = (part.strip() for part in message.splitlines())
    return " ".join(part for part in parts if part and set(part) != {"^"})


def _say(message: str) -> None:
    sys.stderr.write(f"kap-cds: {one_line(message)}\n")


def run_guarded(command: Callable[[], int]) -> int:
    try:
        code = command()
        sys.stdout.flush()  # a closed pipe shows up here at the latest
        return code
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except ConfigError as exc:
        for line in exc.lines():
            sys.stderr.write(f"kap-cds: {line}\n")
        return EXIT_USAGE
    except CliError as exc:
        _say(str(exc))
        return exc.exit_code
    except RuleLoadError as exc:
        _say(f"rule set rejected: {exc.detail}")
        return EXIT_USAGE
    except CdsError as exc:
        _say(f"{exc.detail} ({exc.code})")
        return EXIT_USAGE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"{where}{exc.strerror or type(exc).__name__}")
        return EXIT_USAGE

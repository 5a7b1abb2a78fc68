"""stack.maven.mvn_errors: the meaningful [ERROR] lines of Maven's output, else its last lines."""

from __future__ import annotations

from stack.maven import mvn_errors

OUTPUT = """\
[INFO] Scanning for projects...
\x1b[1;31m[ERROR]\x1b[m Failed to execute goal on project x: Could not resolve dependencies
[ERROR] Could not find artifact io.debezium:nope:jar:1.0 in central
[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.
[ERROR] Re-run Maven using the -X switch to enable full debug logging.
[ERROR]
[ERROR] For more information about the errors and possible solutions, please read the following articles:
[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/DependencyResolutionException
"""


def test_keeps_only_meaningful_error_lines() -> None:
    assert mvn_errors(OUTPUT) == [
        "[ERROR] Failed to execute goal on project x: Could not resolve dependencies",
        "[ERROR] Could not find artifact io.debezium:nope:jar:1.0 in central",
    ]


def test_limit() -> None:
    out = "\n".join(f"[ERROR] problem {i}" for i in range(20))
    assert mvn_errors(out, limit=3) == ["[ERROR] problem 0", "[ERROR] problem 1", "[ERROR] problem 2"]


def test_without_error_lines_returns_last_non_blank_lines() -> None:
    out = "line 1\n\n  line 2  \nline 3\n\n"
    assert mvn_errors(out, limit=2) == ["line 2", "line 3"]
    assert mvn_errors(out) == ["line 1", "line 2", "line 3"]


def test_empty_output() -> None:
    assert mvn_errors("") == []

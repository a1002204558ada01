"""Which fetch URIs are taken, where they land, how they are shown; what the master refuses.

The rules of :mod:`mesoslite.protocol.uris` and :mod:`mesoslite.protocol.honoured`
are shared by the master (TASK_ERROR), the v1 API (400), the agent and the
Marathon-style framework (422): one table of good and bad URIs checks them.
"""

from __future__ import annotations

import pytest

from mesoslite.master.validation import check_tasks
from mesoslite.protocol import (
    CommandInfo,
    CommandURI,
    ContainerInfo,
    HealthCheck,
    Operation,
    TaskInfo,
    Volume,
)
from mesoslite.protocol.honoured import unhonoured_field
from mesoslite.protocol.uris import check_uri, fetch_name, is_archive, mask_uri
from mesoslite.resources import Resources

GOOD = [
    ("http://example.com/a/app.tgz", "app.tgz"),
    ("https://user:pw@example.com:8443/x/run.sh?token=1#f", "run.sh"),
    ("file:///opt/pkg/tool.zip", "tool.zip"),
    ("file://localhost/opt/pkg/tool", "tool"),
    ("/opt/pkg/plain.txt", "plain.txt"),
]
BAD = [
    ("", "expected a URI"),
    ("ftp://example.com/a", "scheme 'ftp' is not supported"),
    ("hdfs://nn/a", "scheme 'hdfs' is not supported"),
    ("relative/path", "expected an http://"),
    ("http:///nohost", "expected a host name"),
    ("file://otherhost/etc/passwd", "names a file on the agent"),
    ("http://example.com/a b", "without spaces"),
    ("http://example.com/a\nb", "without spaces or control"),
    ("http://example.com/", "names no file"),
    ("http://example.com/" + "a" * 5000, "at most 4096"),
]


@pytest.mark.parametrize(("value", "name"), GOOD)
def test_good_uris_pass_and_land_under_their_last_segment(value: str, name: str) -> None:
    """http, https, file and absolute paths pass; the file is named after the path's end."""
    uri = CommandURI(value=value)
    assert check_uri(uri) is None
    assert fetch_name(uri) == name


@pytest.mark.parametrize(("value", "words"), BAD)
def test_bad_uris_are_refused_naming_the_value(value: str, words: str) -> None:
    """Unsupported schemes, missing hosts, foreign file hosts, spaces: refused at value."""
    problem = check_uri(CommandURI(value=value))
    assert problem is not None and problem[0] == "value"
    assert words in problem[1], problem


@pytest.mark.parametrize("output", ["/etc/x", "../x", "a/../../x", "a//b", "./a", ""])
def test_output_file_must_stay_relative_inside_the_sandbox(output: str) -> None:
    """output_file: relative, no '', '.' or '..' segment (the empty one means 'not set')."""
    problem = check_uri(CommandURI(value="http://h/a", output_file=output))
    if output == "":
        assert problem is None
    else:
        assert problem is not None and problem[0] == "output_file", problem
    fine = CommandURI(value="http://h/", output_file="bin/tool")
    assert check_uri(fine) is None and fetch_name(fine) == "bin/tool"


def test_credentials_are_masked_wherever_a_uri_is_shown() -> None:
    """user:password@ becomes ***@; URIs without credentials are unchanged."""
    assert mask_uri("https://bob:s3cret@h/a?x=1") == "https://***@h/a?x=1"
    assert mask_uri("http://h/a@b") == "http://h/a@b"
    problem = check_uri(CommandURI(value="ftp://bob:s3cret@h/a"))
    assert problem is not None and "s3cret" not in problem[1]


def test_archives_are_recognised_by_their_ending() -> None:
    """.tar, .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz and .zip are archives."""
    for name in ("a.tar", "a.TAR.GZ", "a.tgz", "a.tar.bz2", "a.tbz2", "a.tar.xz", "a.txz",
                 "a.zip"):
        assert is_archive(name), name
    for name in ("a.gz", "a.jar", "a.sh", "tar"):
        assert not is_archive(name), name


def _task(command: CommandInfo | None = None, **fields: object) -> TaskInfo:
    """A command task (``fields`` add or replace TaskInfo fields)."""
    return TaskInfo(name="t", task_id="t", agent_id="a", resources=Resources.parse("cpus:1"),
                    command=command or CommandInfo(value="true"), **fields)


def test_fields_nothing_would_honour_are_named() -> None:
    """Bad URIs, a health check's URIs, MESOS volumes and hostname are named; good ones pass."""
    good = _task(CommandInfo(value="true", uris=(CommandURI(value="http://h/a.tgz"),)))
    assert unhonoured_field(good) is None
    bad = _task(CommandInfo(value="true", uris=(CommandURI(value="http://h/a"),
                                                CommandURI(value="s3://b/k"))))
    assert unhonoured_field(bad) == ("command.uris[1].value", (
        "scheme 's3' is not supported (in 's3://b/k'); expected http, https, file or an "
        "absolute path"))
    check = HealthCheck(command=CommandInfo(value="true", uris=(CommandURI(value="/x"),)))
    assert unhonoured_field(_task(health_check=check)) is not None
    assert unhonoured_field(_task(health_check=check))[0] == "health_check.command.uris"
    volumes = ContainerInfo(type="MESOS", volumes=(Volume(container_path="/d"),))
    assert unhonoured_field(_task(container=volumes))[0] == "container.volumes"
    named = ContainerInfo(type="MESOS", hostname="h")
    assert unhonoured_field(_task(container=named))[0] == "container.hostname"


def test_the_master_answers_a_bad_uri_with_a_task_error_naming_it() -> None:
    """check_tasks: the verdict names command.uris[0].output_file and the task."""
    task = _task(CommandInfo(value="true", uris=(
        CommandURI(value="http://h/a", output_file="../../etc/cron.d/x"),)))
    verdicts, _left, _errors = check_tasks(
        [Operation(type="LAUNCH", task_infos=(task,))], "fw", "a",
        [("*", Resources.parse("cpus:2"))], (), ())
    [verdict] = verdicts
    assert verdict.field == "command.uris[0].output_file"
    assert verdict.error.startswith("task t: command.uris[0].output_file: ")

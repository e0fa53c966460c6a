"""``kap-cds`` as a person runs it: errors are one line naming the file, setting or id, with a
non-zero exit; output for people by default, JSON on request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cds.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "fhir_examples"
PATIENT = EXAMPLES / "patients" / "eligible-adult.json"
ORDER = EXAMPLES / "orders" / "ketamine-iv.json"
BP_REQUEST = EXAMPLES / "requests" / "uncontrolled-bp.json"


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAP_CDS_DATABASE_URL", "KAP_CDS_SPOOL_DIR", "KAP_CDS_RULES_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAP_CDS_STATE_DIR", str(tmp_path / "state"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["evaluate", "missing.json"], ["missing.json", "not found"]),
        (["evaluate", "--service", "kap-nope", "--bundle", str(PATIENT)], ["kap-nope", "unknown"]),
        (["evaluate", "--service", "kap-order-sign", "--bundle", str(PATIENT)], ["--order"]),
        (
            ["evaluate", "--service", "kap-appointment-book", "--bundle", str(PATIENT)],
            ["--appointment"],
        ),
        (
            ["evaluate", "--service", "kap-encounter-start", "--bundle", str(PATIENT)],
            ["--encounter"],
        ),
        (
            ["evaluate", "--service", "kap-encounter-start", "--bundle", str(PATIENT)]
            + ["--encounter", "no-such-encounter"],
            ["no-such-encounter"],
        ),
        (
            [
                "evaluate",
                "--service",
                "kap-order-sign",
                "--bundle",
                str(ORDER),
                "--order",
                str(ORDER),
            ],
            ["--bundle", "expected a Bundle"],
        ),
        (["evaluate", str(BP_REQUEST), "--at", "tomorrow"], ["--at", "tomorrow"]),
        (["evaluate"], ["REQUEST.json"]),
        (["rules", "test", "KAP-NOPE-999"], ["KAP-NOPE-999", "unknown rule id"]),
    ],
)
def test_errors_are_one_line_naming_the_culprit(
    capsys: pytest.CaptureFixture[str], argv: list[str], names: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    line = one_error_line(err)
    for name in names:
        assert name in line
    assert out == ""


def test_invalid_json_names_file_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"hook": "order-sign",\n  "context": }\n', encoding="utf-8")
    code, _, err = run(capsys, "evaluate", str(broken))
    assert code == 2
    assert f"{broken}: invalid JSON at line 2 column" in one_error_line(err)


def test_request_with_unknown_hook_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"hook": "order-dispatch", "hookInstance": "x"}), "utf-8")
    code, _, err = run(capsys, "evaluate", str(request))
    assert code == 2
    assert "'order-dispatch' is not served" in one_error_line(err)


def test_evaluate_prints_cards_for_people_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "evaluate", str(BP_REQUEST))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.split() == ["CRITICAL", "KAP-CI-011"]  # most severe first
    assert "186/112" in out  # the why: the patient data behind the card
    assert "**" not in out
    assert out.rstrip().endswith("from kap-order-sign")
    assert "(1 critical, 1 info)" in out


def test_evaluate_json_format_is_the_cds_hooks_response(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "evaluate", str(BP_REQUEST), "--format", "json")
    assert code == 0
    cards = json.loads(out)["cards"]
    assert {c["extension"]["org.kapcds.rule"]["id"] for c in cards} >= {"KAP-CI-011"}


def test_evaluate_from_bundle_and_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "evaluate",
        "--service",
        "kap-order-sign",
        "--bundle",
        str(PATIENT),
        "--order",
        str(ORDER),
        "--at",
        "2026-11-20T15:00:00+00:00",
    )
    assert code == 0, err
    assert "from kap-order-sign" in out


def test_rules_test_one_rule_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "rules", "test", "KAP-CI-011")
    assert code == 0, out + err
    passed = int(out.strip().splitlines()[-1].split()[0])
    assert passed >= 2  # a fires- and a quiet- fixture at least


def test_rules_report_to_stdout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "rules", "report", "--format", "md", "-o", "-")
    assert code == 0, err
    assert "# KAP rule set report" in out
    assert "KAP-CI-011" in out
    assert not (tmp_path / "-").exists()


def test_version_names_package_and_rule_set(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0
    assert out.startswith("kap-cds 0.1.0\nrule set ")
    assert "active rules, digest " in out


def test_serve_help_shows_defaults_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "(default: 8080; KAP_CDS_PORT)" in out
    assert "(default: 127.0.0.1; KAP_CDS_HOST)" in out
    assert "KAP_CDS_TRUSTED_ISSUERS" in out
    assert "KAP_CDS_DATABASE_URL" in out


def test_configuration_problems_one_line_each(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAP_CDS_DATABASE_URL", "sqlite:////nonexistent-kap-dir/a.db")
    monkeypatch.setenv("KAP_CDS_RULES_DIR", str(tmp_path / "no-rules"))
    code, _, err = run(capsys, "rules", "lint")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert any("KAP_CDS_DATABASE_URL=" in line and "/nonexistent-kap-dir" in line for line in lines)
    assert any("KAP_CDS_RULES_DIR=" in line for line in lines)
    assert not Path("/nonexistent-kap-dir").exists()


def test_broken_pipe_ends_quietly() -> None:
    """``kap-cds audit export | head``: the reader leaves (here before the first line), the
    command ends with 141 like any Unix tool, without a traceback."""
    shell = f"{sys.executable} -m cds.cli rules facts | true; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(
        ["bash", "-c", shell],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "141"
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr


def test_rules_test_finds_fixtures_beside_the_rule_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image layout: /app/rules and /app/fhir_examples, the package installed elsewhere."""
    import shutil

    app = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "rules", app / "rules")
    shutil.copytree(EXAMPLES, app / "fhir_examples")
    for case_dir in (app / "fhir_examples" / "cases").iterdir():
        if case_dir.name != "KAP-CI-011":
            shutil.rmtree(case_dir)
    monkeypatch.setenv("KAP_CDS_RULES_DIR", str(app / "rules"))
    code, out, err = run(capsys, "rules", "test")
    assert code == 0, err
    expected = len(list((app / "fhir_examples" / "cases" / "KAP-CI-011").glob("*.json")))
    assert out.strip().splitlines()[-1] == f"{expected} passed, 0 failed"

"""The registry: versions, atomic stage pointers, an append-only history, and safety under crashes and attacks."""

import json
import multiprocessing
import os
import random
import shutil
import signal
import time
from itertools import pairwise

import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }} import registry as registry_module
from {{ cookiecutter.package_name }}.artifact import ArtifactError
from {{ cookiecutter.package_name }}.registry import Registry, RegistryError

from tampering import append_byte, edit_metadata, reseal_manifest

KILL_TRIALS = 30
# a well-formed history line, for the test to corrupt
A_PROMOTION = {
    "time": "2030-01-01T00:00:00+00:00",
    "user": "u",
    "action": "promote",
    "stage": "production",
    "from": "v1",
}
# multiprocessing's fork start method copies this already-imported process, so children start at once;
# Python 3.12+ warns about fork in a process that has native threads (BLAS), harmless for these children
fork_ok = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


@pytest.fixture
def versions(tmp_path, model_dir):
    """Three model folders named v1, v2 and v3 (copies of the session model under other version ids)."""
    folders = []
    for name in ("v1", "v2", "v3"):
        folder = shutil.copytree(model_dir, tmp_path / "artifacts" / name)
        metadata = json.loads((folder / artifact.METADATA_FILE).read_text())
        (folder / artifact.METADATA_FILE).write_text(json.dumps({**metadata, "version": name}))
        artifact.write_manifest(folder)
        folders.append(folder)
    return folders


@pytest.fixture
def registry(tmp_path, versions):
    """Here, unlike conftest's: a new registry with v1, v2 and v3 registered and no stage set."""
    registry = Registry(tmp_path / "registry")
    for folder in versions:
        registry.register(folder)
    return registry


def temp_files(registry):
    """The temp files and folders a writer leaves in stages/ and models/ while it works."""
    return sorted(p.name for folder in (registry.stages, registry.models) for p in folder.iterdir() if p.name[0] == ".")


def production_moves(registry):
    """The history entries that moved production, oldest first."""
    return [entry for entry in registry.history() if entry["stage"] == "production"]


def everything_in(registry):
    """Every file and folder of the registry, with each file's bytes."""
    paths = sorted(registry.root.rglob("*"))
    return [(path, path.read_bytes() if path.is_file() else None) for path in paths]


def test_register_copies_a_model_folder_and_records_it(tmp_path, model_dir):
    registry = Registry(tmp_path / "registry")
    version = registry.register(model_dir, reason="first")
    assert version == model_dir.name
    assert registry.versions() == [version]
    assert (registry.folder(version) / artifact.MODEL_FILE).read_bytes() == (model_dir / "model.skops").read_bytes()
    (entry,) = registry.history()
    assert {k: entry[k] for k in ("action", "stage", "from", "to", "reason")} == {
        "action": "register",
        "stage": None,
        "from": None,
        "to": version,
        "reason": "first",
    }
    assert registry.current("production") is None


def test_register_copies_the_gate_report_and_adds_it_to_the_manifest(tmp_path, model_dir):
    folder = shutil.copytree(model_dir, tmp_path / "reported")
    (folder / "report.md").write_text("## AUC gate: PASSED\n")
    registry = Registry(tmp_path / "registry")
    version = registry.register(folder)
    copy = registry.folder(version)
    assert sorted(path.name for path in copy.iterdir()) == sorted(path.name for path in folder.iterdir())
    assert "report.md" in json.loads((copy / artifact.MANIFEST_FILE).read_text())["files"]
    (copy / "report.md").write_text("## AUC gate: PASSED (edited)\n")
    with pytest.raises(ArtifactError, match="report.md does not match its sha256"):
        registry.promote(version, "production")


def plant_extra_files(folder):
    """A file and a folder that no model folder holds."""
    (folder / "notes.txt").write_text("planted")
    (folder / "cache").mkdir()


def link_report_to_a_secret(folder):
    """A report.md that is a link to a file outside the folder."""
    (folder.parent / "secret").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / "report.md").symlink_to(folder.parent / "secret")


def drop_metrics(folder):
    """Delete metrics.json and recompute the manifest without it."""
    (folder / artifact.METRICS_FILE).unlink()
    reseal_manifest(folder)


@pytest.mark.parametrize(
    ("tamper", "error", "refusal"),
    [
        (lambda f: edit_metadata(f, version="v1"), RegistryError, "version v1 is already registered"),
        (lambda f: (f / artifact.MODEL_FILE).write_bytes(b"tampered"), ArtifactError, "sha256"),
        (link_report_to_a_secret, ArtifactError, r"\(links, unknown files\): report.md"),
        (plant_extra_files, ArtifactError, r"\(links, unknown files\): cache, notes.txt"),
        (lambda f: edit_metadata(f, version="../escaped"), ArtifactError, "is not a version name"),
        (lambda f: edit_metadata(f, version=".hidden"), ArtifactError, "is not a version name"),
        (lambda f: edit_metadata(f, version="a/b"), ArtifactError, "is not a version name"),
        (lambda f: edit_metadata(f, version=""), ArtifactError, "is not a version name"),
        (lambda f: edit_metadata(f, version="two\nlines"), ArtifactError, "is not a version name"),
        (drop_metrics, ArtifactError, "metrics.json"),
        (lambda f: edit_metadata(f, drop="features"), ArtifactError, "lacks features"),
        (lambda f: edit_metadata(f, features=[{"name": "x"}]), ArtifactError, "the feature list is broken"),
        (lambda f: edit_metadata(f, features="abc"), ArtifactError, "the feature list is broken"),
    ],
    ids=[
        "already-registered",
        "tampered",
        "linked-report",
        "extra-files",
        "version-escaping-models",
        "hidden-version",
        "version-with-a-slash",
        "empty-version",
        "version-of-two-lines",
        "no-metrics",
        "no-features",
        "feature-without-a-kind",
        "features-not-a-list",
    ],
)
def test_register_refuses_a_folder_it_could_not_serve_and_changes_nothing(
    tmp_path, registry, model_dir, tamper, error, refusal
):
    folder = shutil.copytree(model_dir, tmp_path / "candidate" / "model")
    tamper(folder)
    before, history = everything_in(registry), registry.history()
    with pytest.raises(error, match=refusal):
        registry.register(folder)
    assert everything_in(registry) == before  # nothing copied, not even a temp folder
    assert registry.history() == history


def test_promote_moves_a_stage_and_records_who_what_and_why(registry, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert registry.promote("v1", "production", reason="first") is None
    assert registry.promote("v2", "production", reason="better") == "v1"
    assert registry.promote("v3", "staging") is None
    assert (registry.current("staging"), registry.current("production")) == ("v3", "v2")
    assert (registry.stages / "production").read_text() == "v2\n"
    assert temp_files(registry) == []  # each pointer was replaced at once, through a temp file
    last = production_moves(registry)[-1]
    assert {k: last[k] for k in ("user", "action", "stage", "from", "to", "reason")} == {
        "user": "octocat",
        "action": "promote",
        "stage": "production",
        "from": "v1",
        "to": "v2",
        "reason": "better",
    }
    with pytest.raises(RegistryError, match="unknown stage 'qa'; choose one of staging, production"):
        registry.current("qa")


def link_v9_to_v1(registry):
    """A link in models/ named like a version, to a registered version's folder."""
    (registry.models / "v9").symlink_to(registry.models / "v1")


@pytest.mark.parametrize(
    ("version", "stage", "reason", "prepare", "refusal"),
    [
        ("v2", "qa", "manual", None, "unknown stage 'qa'; choose one of staging, production"),
        ("v9", "production", "manual", None, "no version 'v9'"),
        ("../v1", "production", "manual", None, "no version"),
        ("/tmp", "production", "manual", None, "no version"),
        ("v1/.", "production", "manual", None, "no version"),
        ("v1/../v2", "production", "manual", None, "no version"),
        ("v9", "production", "manual", link_v9_to_v1, "no version 'v9'"),
        ("v2", "production", "manual", lambda r: append_byte(r.folder("v2") / artifact.MODEL_FILE), "sha256"),
        ("v2", "production", "two\nlines", None, "one printable line"),
        ("v2", "production", "\x1b[31mred", None, "one printable line"),
        ("v2", "production", "x" * 501, None, "one printable line"),
    ],
    ids=[
        "unknown-stage",
        "unknown-version",
        "parent-path",
        "absolute-path",
        "dot-path",
        "dot-dot-path",
        "linked-version-folder",
        "tampered-model",
        "reason-of-two-lines",
        "reason-with-an-escape-sequence",
        "reason-too-long",
    ],
)
def test_a_refused_promotion_names_the_problem_and_changes_nothing(registry, version, stage, reason, prepare, refusal):
    registry.promote("v1", "production")
    if prepare:
        prepare(registry)
    before = registry.history()
    with pytest.raises((RegistryError, ArtifactError), match=refusal):
        registry.promote(version, stage, reason=reason)
    assert registry.history() == before
    assert (registry.current("production"), registry.current("staging")) == ("v1", None)
    assert registry.versions() == ["v1", "v2", "v3"]


@pytest.mark.parametrize(
    ("promoted", "to", "outcome"),
    [
        (["v1", "v2", "v3"], None, ("v3", "v2")),
        (["v1", "v2", "v3"], "v1", ("v3", "v1")),
        (["v1", "v2", "v2"], None, ("v2", "v1")),
        ([], None, "nothing to roll back to"),
        (["v1"], None, r"production \(v1\) replaced no earlier version: nothing to roll back to"),
    ],
    ids=["to-the-replaced-version", "to-a-named-version", "past-a-repeated-promotion", "nothing-promoted", "first"],
)
def test_rollback_returns_to_the_version_production_replaced_or_is_refused(registry, promoted, to, outcome):
    for version in promoted:
        registry.promote(version, "production")
    if isinstance(outcome, str):
        with pytest.raises(RegistryError, match=outcome):
            registry.rollback(to)
        assert registry.current("production") == (promoted[-1] if promoted else None)
    else:
        assert registry.rollback(to) == outcome
        assert registry.current("production") == outcome[1]


def test_rollbacks_unwind_promotions_one_at_a_time(registry):
    for version in ("v1", "v2", "v3"):
        registry.promote(version, "production")
    assert registry.rollback() == ("v3", "v2")
    assert registry.rollback() == ("v2", "v1")
    assert [entry["action"] for entry in production_moves(registry)] == ["promote"] * 3 + ["rollback"] * 2
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    registry.promote("v3", "production")  # a new promotion after rollbacks replaces v1, so it rolls back to v1
    assert registry.previous_production() == "v1"
    assert registry.rollback(reason="v3 is bad") == ("v3", "v1")
    assert registry.history()[-1]["reason"] == "v3 is bad"


def crash_between_history_and_pointer(registry, monkeypatch, version):
    """Promote ``version`` to production, crashing after the history line is written but before the pointer moves."""

    def crash(path, text):
        raise OSError("simulated crash before the pointer moved")

    with monkeypatch.context() as patch:
        patch.setattr(registry_module, "atomic_write", crash)
        with pytest.raises(OSError, match="simulated crash"):
            registry.promote(version, "production")


def test_repair_finishes_a_promotion_that_crashed_between_history_and_pointer(registry, monkeypatch):
    registry.promote("v1", "production")
    registry.promote("v2", "staging")
    pointers = {path.name: path.read_text() for path in registry.stages.iterdir()}
    registry.repair()
    assert {path.name: path.read_text() for path in registry.stages.iterdir()} == pointers  # consistent: left alone
    crash_between_history_and_pointer(registry, monkeypatch, "v2")
    assert (registry.current("production"), production_moves(registry)[-1]["to"]) == ("v1", "v2")
    registry.repair()
    assert registry.current("production") == "v2"
    # the next promotion or rollback repairs first: the crashed move to v3 counts, so "previous" is v2
    crash_between_history_and_pointer(registry, monkeypatch, "v3")
    assert registry.current("production") == "v2"
    assert registry.rollback() == ("v3", "v2")
    assert registry.current("production") == "v2"


def test_a_torn_history_line_is_ignored_and_does_not_corrupt_the_next_entry(registry):
    registry.promote("v1", "production")
    with registry.history_file.open("a") as file:
        file.write('{"time": "2030-01-01T00:00:00+00:00", "act')  # a crash (power loss) mid-append
    assert production_moves(registry)[-1]["to"] == "v1"
    registry.promote("v2", "production")
    assert [entry["to"] for entry in production_moves(registry)] == ["v1", "v2"]
    assert registry.rollback() == ("v2", "v1")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{broken", "line 2 is not a history entry"),
        (b"[1, 2]", "line 2 is not a history entry"),
        (
            json.dumps({**A_PROMOTION, "to": "../../outside", "reason": "manual"}).encode(),
            "line 2 is not a history entry",
        ),
        (b"\xff\xfe", "is not text: restore it from a backup"),
    ],
    ids=["not-json", "not-an-entry", "a-path-as-version", "not-text"],
)
def test_a_corrupt_history_line_is_named_and_never_acted_on(registry, line, problem):
    registry.promote("v1", "production")
    lines = registry.history_file.read_bytes().splitlines()
    registry.history_file.write_bytes(b"\n".join([lines[0], line, *lines[1:]]) + b"\n")
    for read_or_act in (registry.history, registry.repair, registry.rollback):
        with pytest.raises(RegistryError, match=problem):
            read_or_act()
    assert (registry.stages / "production").read_text() == "v1\n"


@pytest.mark.parametrize(
    "pointer",
    [b"../outside", b"/etc", b"models/v1", b"v1/../v2", b".hidden", b"v1\nv2", b"v" * 300, b"\x00\xff"],
    ids=["parent", "absolute", "nested", "dot-dot-inside", "hidden", "two-lines", "too-long", "not-text"],
)
def test_a_stage_pointer_that_is_not_a_version_in_models_is_refused(registry, pointer):
    registry.promote("v1", "production")
    (registry.stages / "production").write_bytes(pointer + b"\n")
    with pytest.raises(RegistryError, match="does not hold a version name"):
        registry.current("production")


def test_a_linked_stage_pointer_is_refused_without_showing_its_target(registry, tmp_path):
    (tmp_path / "secret.txt").write_text("password=hunter2\n")
    (registry.stages / "production").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(RegistryError, match="is a symbolic link") as error:
        registry.current("production")
    assert "hunter2" not in str(error.value)


def test_repair_removes_the_temp_files_a_killed_promotion_or_registration_left(registry):
    registry.promote("v1", "production")
    # what kill -9 leaves: atomic_write's temp pointer, register's half-copied folder
    (registry.stages / ".production-k1ll3d").write_text("v2\n")
    (registry.models / ".incoming-k1ll3d").mkdir()
    (registry.models / ".incoming-k1ll3d" / artifact.MODEL_FILE).write_bytes(b"half")
    registry.repair()
    assert temp_files(registry) == []
    assert registry.current("production") == "v1"
    assert registry.versions() == ["v1", "v2", "v3"]


def promote_many(root, versions, count, go):
    """Child process: wait for the start signal, then promote ``count`` times."""
    registry = Registry(root)
    go.wait(30)
    for number in range(count):
        registry.promote(versions[number % len(versions)], "production", reason=f"pid {os.getpid()} #{number}")


def promote_forever(root, versions, started):
    """Child process: promote in a loop until killed; ``started`` is set once its first promotion is done."""
    registry = Registry(root)
    for number in range(100_000):
        registry.promote(versions[number % len(versions)], "production", reason="until killed")
        started.set()  # on a loaded machine a promotion takes longer than the sleep before the kill


@fork_ok
@pytest.mark.slow
def test_concurrent_promotions_from_two_processes_are_serialized(registry):
    context = multiprocessing.get_context("fork")
    go = context.Event()
    children = [
        context.Process(target=promote_many, args=(registry.root, versions, 25, go))
        for versions in (["v1", "v2"], ["v3", "v2"])
    ]
    for child in children:
        child.start()
    go.set()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0, 0]
    moves = production_moves(registry)
    assert len(moves) == 50
    assert moves[0]["from"] is None
    for before, after in pairwise(moves):
        assert after["from"] == before["to"]
    assert registry.current("production") == moves[-1]["to"]


@fork_ok
@pytest.mark.slow
def test_sigkill_during_promotions_never_leaves_a_broken_registry(registry):
    registry.promote("v1", "production")
    context = multiprocessing.get_context("fork")
    rng = random.Random(0)
    for _ in range(KILL_TRIALS):
        started = context.Event()
        child = context.Process(target=promote_forever, args=(registry.root, ["v2", "v3", "v1"], started))
        child.start()
        try:
            assert started.wait(30)
            time.sleep(rng.uniform(0, 0.06))  # a promotion (verify, two fsyncs) takes about 30 ms
        finally:
            child.kill()
            child.join(30)
        assert child.exitcode == -signal.SIGKILL
        assert registry.current("production") in registry.versions()
        lines = registry.history_file.read_text().splitlines()
        assert all(json.loads(line)["to"] in registry.versions() for line in lines)
        registry.repair()
        assert registry.current("production") == production_moves(registry)[-1]["to"]
        assert temp_files(registry) == []
    # the children really were promoting when they were killed
    assert len(production_moves(registry)) > KILL_TRIALS

"""The registry: versions, atomic stage pointers, an append-only history, and safety under crashes."""

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
from {{ cookiecutter.package_name }}.registry import Registry, RegistryError, atomic_write

from tampering import reseal_manifest

KILL_TRIALS = 30
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


def test_registering_a_version_twice_is_refused(registry, versions):
    with pytest.raises(RegistryError, match="v1 is already registered"):
        registry.register(versions[0])


def test_registering_a_tampered_folder_is_refused(tmp_path, registry, model_dir):
    folder = shutil.copytree(model_dir, tmp_path / "tampered")
    (folder / artifact.MODEL_FILE).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="sha256"):
        registry.register(folder)
    assert model_dir.name not in registry.versions()


def test_promote_moves_a_stage_and_records_who_what_and_why(registry, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert registry.promote("v1", "production", reason="first") is None
    assert registry.promote("v2", "production", reason="better") == "v1"
    assert registry.current("production") == "v2"
    assert registry.current("staging") is None
    last = registry.history()[-1]
    assert {k: last[k] for k in ("user", "action", "stage", "from", "to", "reason")} == {
        "user": "octocat",
        "action": "promote",
        "stage": "production",
        "from": "v1",
        "to": "v2",
        "reason": "better",
    }


def test_stages_move_independently(registry):
    registry.promote("v1", "production")
    registry.promote("v2", "staging")
    assert (registry.current("staging"), registry.current("production")) == ("v2", "v1")


def test_an_unknown_stage_is_refused(registry):
    with pytest.raises(RegistryError, match="unknown stage 'qa'; choose one of staging, production"):
        registry.promote("v1", "qa")
    with pytest.raises(RegistryError, match="unknown stage"):
        registry.current("qa")


def test_an_unknown_version_is_refused(registry):
    with pytest.raises(RegistryError, match="no version 'v9'"):
        registry.promote("v9", "production")
    assert registry.current("production") is None


def test_a_tampered_model_is_refused_at_promotion(registry):
    registry.promote("v1", "production")
    with (registry.folder("v2") / artifact.MODEL_FILE).open("ab") as file:
        file.write(b"\0")
    before = registry.history()
    with pytest.raises(ArtifactError, match="sha256"):
        registry.promote("v2", "production")
    assert registry.current("production") == "v1"
    assert registry.history() == before


def test_rollback_unwinds_promotions_one_at_a_time(registry):
    for version in ("v1", "v2", "v3"):
        registry.promote(version, "production")
    assert registry.rollback() == ("v3", "v2")
    assert registry.rollback() == ("v2", "v1")
    assert registry.current("production") == "v1"
    assert [entry["action"] for entry in production_moves(registry)] == ["promote"] * 3 + ["rollback"] * 2
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    assert registry.current("production") == "v1"


def test_rollback_after_a_new_promotion_returns_to_the_version_it_replaced(registry):
    for version in ("v1", "v2"):
        registry.promote(version, "production")
    registry.rollback()
    registry.promote("v3", "production")
    assert registry.previous_production() == "v1"
    assert registry.rollback(reason="v3 is bad") == ("v3", "v1")
    assert registry.history()[-1]["reason"] == "v3 is bad"


def test_rollback_to_a_named_version(registry):
    for version in ("v1", "v2", "v3"):
        registry.promote(version, "production")
    assert registry.rollback(to="v1") == ("v3", "v1")
    assert registry.current("production") == "v1"


def test_rollback_with_nothing_earlier_is_refused(registry):
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    registry.promote("v1", "production")
    with pytest.raises(RegistryError, match=r"production \(v1\) replaced no earlier version"):
        registry.rollback()
    assert registry.current("production") == "v1"


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
    crash_between_history_and_pointer(registry, monkeypatch, "v2")
    assert registry.current("production") == "v1"
    assert production_moves(registry)[-1]["to"] == "v2"
    registry.repair()
    assert registry.current("production") == "v2"


def test_the_next_promotion_or_rollback_finishes_a_crashed_one_first(registry, monkeypatch):
    for version in ("v1", "v2"):
        registry.promote(version, "production")
    crash_between_history_and_pointer(registry, monkeypatch, "v3")
    assert registry.current("production") == "v2"  # the history already says v3
    assert registry.rollback() == ("v3", "v2")  # repaired to v3 first, so "previous" is v2, as the history says
    assert registry.current("production") == "v2"


def test_rollback_skips_a_promotion_of_the_version_already_in_production(registry):
    for version in ("v1", "v2", "v2"):
        registry.promote(version, "production")
    assert registry.rollback() == ("v2", "v1")


@pytest.mark.parametrize(
    ("line", "problem"),
    [("{broken", "line 2 is not a history entry"), ("[1, 2]", "line 2 is not a history entry")],
    ids=["not-json", "not-an-entry"],
)
def test_a_broken_history_line_is_named(registry, line, problem):
    registry.promote("v1", "production")
    lines = registry.history_file.read_text().splitlines()
    registry.history_file.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    with pytest.raises(RegistryError, match=problem):
        registry.history()
    with pytest.raises(RegistryError, match=problem):
        registry.rollback()


def test_a_history_or_pointer_that_is_not_text_is_named(registry):
    registry.promote("v1", "production")
    (registry.stages / "production").write_bytes(b"\x00\xff")
    with pytest.raises(RegistryError, match="does not hold a version name"):
        registry.current("production")
    registry.history_file.write_bytes(b"\xff\xfe\n")
    with pytest.raises(RegistryError, match="is not text"):
        registry.history()


@pytest.mark.parametrize("version", ["../escaped", ".hidden", "a/b", "", "two\nlines"])
def test_a_version_name_that_is_not_a_plain_folder_name_is_refused(tmp_path, registry, model_dir, version):
    folder = shutil.copytree(model_dir, tmp_path / "odd")
    metadata = json.loads((folder / artifact.METADATA_FILE).read_text())
    (folder / artifact.METADATA_FILE).write_text(json.dumps({**metadata, "version": version}))
    artifact.write_manifest(folder)
    before = sorted(path.name for path in registry.root.rglob("*"))
    with pytest.raises(ArtifactError, match="is not a version name"):
        registry.register(folder)
    assert sorted(path.name for path in registry.root.rglob("*")) == before


def test_a_model_folder_the_service_could_not_serve_is_refused_at_registration(tmp_path, registry, model_dir):
    def broken(name, metadata_changes=None, drop=None):
        folder = shutil.copytree(model_dir, tmp_path / name)
        metadata = json.loads((folder / artifact.METADATA_FILE).read_text())
        metadata = {k: v for k, v in {**metadata, **(metadata_changes or {})}.items() if k != drop}
        (folder / artifact.METADATA_FILE).write_text(json.dumps(metadata))
        reseal_manifest(folder)
        return folder

    no_metrics = broken("no-metrics")
    (no_metrics / artifact.METRICS_FILE).unlink()
    reseal_manifest(no_metrics)
    for folder, message in [
        (no_metrics, "metrics.json"),
        (broken("no-features", drop="features"), "lacks features"),
        (broken("bad-features", {"features": [{"name": "x"}]}), "the feature list is broken"),
        (broken("no-features-list", {"features": "abc"}), "the feature list is broken"),
    ]:
        with pytest.raises(ArtifactError, match=message):
            registry.register(folder)


def test_repair_leaves_a_consistent_registry_alone(registry):
    registry.promote("v1", "production")
    registry.promote("v2", "staging")
    pointers = {path.name: path.read_text() for path in registry.stages.iterdir()}
    registry.repair()
    assert {path.name: path.read_text() for path in registry.stages.iterdir()} == pointers


def test_a_torn_history_line_is_ignored_and_does_not_corrupt_the_next_entry(registry):
    registry.promote("v1", "production")
    with registry.history_file.open("a") as file:
        file.write('{"time": "2030-01-01T00:00:00+00:00", "act')  # a crash (power loss) mid-append
    assert production_moves(registry)[-1]["to"] == "v1"
    registry.promote("v2", "production")
    assert [entry["to"] for entry in production_moves(registry)] == ["v1", "v2"]
    assert registry.rollback() == ("v2", "v1")


def test_atomic_write_replaces_the_content_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "pointer"
    path.write_text("old\n")
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pointer"]


def promote_many(root, versions, count, go):
    """Child process: wait for the start signal, then promote ``count`` times."""
    registry = Registry(root)
    go.wait(30)
    for number in range(count):
        registry.promote(versions[number % len(versions)], "production", reason=f"pid {os.getpid()} #{number}")


def promote_forever(root, versions, started):
    """Child process: promote in a loop until killed."""
    registry = Registry(root)
    started.set()
    for number in range(100_000):
        registry.promote(versions[number % len(versions)], "production", reason="until killed")


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


@pytest.mark.parametrize(
    "pointer",
    ["../outside", "/etc", "models/v1", "v1/../v2", ".hidden", "v1\nv2", "v" * 300],
    ids=["parent", "absolute", "nested", "dot-dot-inside", "hidden", "two-lines", "too-long"],
)
def test_a_stage_pointer_that_is_not_a_version_in_models_is_refused(registry, pointer):
    registry.promote("v1", "production")
    (registry.stages / "production").write_text(pointer + "\n")
    with pytest.raises(RegistryError, match="does not hold a version name"):
        registry.current("production")


@pytest.mark.parametrize("version", ["../v1", "/tmp", "v1/.", "v1/../v2"])
def test_a_version_that_is_a_path_is_not_a_registered_folder(registry, version):
    with pytest.raises(RegistryError, match="no version"):
        registry.folder(version)
    with pytest.raises(RegistryError, match="no version"):
        registry.promote(version, "production")
    assert registry.current("production") is None


def test_a_linked_version_folder_is_not_a_registered_version(registry, tmp_path, versions):
    (registry.models / "v9").symlink_to(versions[0])
    assert "v9" not in registry.versions()
    with pytest.raises(RegistryError, match="no version 'v9'"):
        registry.promote("v9", "production")


def test_a_history_entry_naming_a_path_is_refused_and_never_becomes_a_pointer(registry):
    registry.promote("v1", "production")
    entry = {**registry.history()[-1], "from": "v1", "to": "../../outside"}
    with registry.history_file.open("a") as file:
        file.write(json.dumps(entry) + "\n")
    with pytest.raises(RegistryError, match="is not a history entry"):
        registry.repair()
    assert (registry.stages / "production").read_text() == "v1\n"


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


def test_register_refuses_a_linked_file_and_names_it(tmp_path, registry, model_dir):
    (tmp_path / "secret").write_text("root:x:0:0:root:/root:/bin/bash\n")
    folder = shutil.copytree(model_dir, tmp_path / "linked")
    (folder / "report.md").symlink_to(tmp_path / "secret")
    before = registry.history()
    with pytest.raises(ArtifactError, match="report.md"):
        registry.register(folder)
    assert model_dir.name not in registry.versions()
    assert registry.history() == before
    assert not any("root:x:0" in path.read_text() for path in registry.models.rglob("report.md"))


def test_register_refuses_extra_files_and_names_them(tmp_path, registry, model_dir):
    folder = shutil.copytree(model_dir, tmp_path / "extra")
    (folder / "notes.txt").write_text("planted")
    (folder / "cache").mkdir()
    with pytest.raises(ArtifactError, match="cache, notes.txt"):
        registry.register(folder)
    assert model_dir.name not in registry.versions()
    assert temp_files(registry) == []


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


@pytest.mark.parametrize("reason", ["two\nlines", "\x1b[31mred", "x" * 501], ids=["newline", "escape", "too-long"])
def test_a_reason_that_is_not_one_printable_line_is_refused(registry, reason):
    before = registry.history()
    with pytest.raises(RegistryError, match="one printable line"):
        registry.promote("v1", "production", reason=reason)
    assert registry.history() == before
    assert registry.current("production") is None

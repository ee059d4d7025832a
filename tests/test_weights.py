"""Finding weights and reading LAION's neutral statistics."""

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from empathic import hub, registry
from empathic.checksums import WeightChecksumError, verify_files
from empathic.hub import MissingWeightsError, ModelNeed, WeightSources, download_needs, resolve_needs, resolve_repos
from empathic.models.face import FaceEmotionModel, NeutralStatsError, load_neutral_means
from empathic.models.voice import VoiceEmotionModel
from empathic.registry import (FACE_MODELS, PUBLISHED_CHECKSUMS, VOICE_MODELS, RepoRef, RevisionChoices,
                               parse_revision_choices)
from empathic.taxonomy import file_key_of

SMALL, LARGE = FACE_MODELS["small"], FACE_MODELS["large"]


def test_flat_and_nested_neutral_files_give_means_in_head_order(tmp_path):
    heads = SMALL.head_file_names()
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({f"model_{file_key_of(n)}_best": float(i) for i, n in enumerate(heads)}))
    np.testing.assert_array_equal(load_neutral_means(flat, SMALL.neutral, heads), np.arange(44.0))
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({f"model_{file_key_of(n)}_best": {"mean": i / 2, "std": 1.0}
                                  for i, n in enumerate(LARGE.head_file_names())}))
    np.testing.assert_array_equal(load_neutral_means(nested, LARGE.neutral, LARGE.head_file_names()),
                                  np.arange(40) / 2)


def test_incomplete_neutral_file_falls_back_to_zero_as_laion_does(tmp_path, caplog):
    heads = SMALL.head_file_names()
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"model_elation_best": 0.5}))
    with caplog.at_level(logging.WARNING):
        assert load_neutral_means(partial, SMALL.neutral, heads) is None
    assert "no usable neutral mean for model_amusement_best" in caplog.text
    # a nested entry without "std" does not count (LAION discards such caches)
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({f"model_{file_key_of(n)}_best": {"mean": 1.0} for n in LARGE.head_file_names()}))
    assert load_neutral_means(nested, LARGE.neutral, LARGE.head_file_names()) is None


def test_unreadable_neutral_file_is_an_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(NeutralStatsError, match="bad.json: not readable JSON"):
        load_neutral_means(bad, SMALL.neutral, SMALL.head_file_names())


def test_resolution_reports_every_missing_repo_at_once(tmp_path):
    wanted = {RepoRef("laion/Empathic-Insight-Face-Small", "main"): ["*.pth"],
              RepoRef("google/siglip2-so400m-patch16-384", "main"): ["config.json"]}
    with pytest.raises(MissingWeightsError) as caught:
        resolve_repos(wanted, WeightSources(cache_dir=tmp_path, offline=True), "empathic models download --face small")
    message = str(caught.value)
    assert "laion/Empathic-Insight-Face-Small" in message and "google/siglip2-so400m-patch16-384" in message
    assert "`empathic models download --face small`" in message
    with pytest.raises(MissingWeightsError, match="model folder for laion/x does not exist"):
        resolve_repos({RepoRef("laion/x", "main"): []},
                      WeightSources(local_dirs={"laion/x": tmp_path / "nowhere"}), "cmd")


def test_hf_home_is_honoured_like_every_hugging_face_tool(hub_cache, tmp_path):
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "hub").symlink_to(hub_cache, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"}
    env["HF_HOME"] = str(home)
    code = ("from empathic.hub import WeightSources, resolve_repos;"
            "from empathic.registry import FACE_MODELS as F;"
            "r = resolve_repos({F['small'].repo: ['*.json']}, WeightSources(), 'cmd');"
            "print(next(iter(r.values())).path)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent.parent.name == "models--laion--Empathic-Insight-Face-Small"


# --- Revisions, published checksums, and Voice-Large's heads where they are ---------------------------


def test_every_pin_is_a_full_commit_hash_or_a_named_ref_and_every_checksum_a_sha256():
    refs = [spec.repo for spec in (*registry.FACE_MODELS.values(), *VOICE_MODELS.values())]
    refs += [registry.SIGLIP2_SO400M, *registry.VOICE_ENCODERS.values()]
    for ref in refs:
        assert ref.revision in ("main", "refs/pr/3") or re.fullmatch(r"[0-9a-f]{40}", ref.revision), ref
    assert VOICE_MODELS["plus"].repo.revision == "441d220122d77cc43b60ffe3e13bf9358bf2fe8d"
    for repo_id, published in PUBLISHED_CHECKSUMS.items():
        assert published.sha256 and published.source.startswith("https://huggingface.co/" + repo_id)
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in published.sha256.values()), repo_id
        spec = next(s for s in (*registry.FACE_MODELS.values(), *VOICE_MODELS.values()) if s.repo.repo_id == repo_id)
        assert set(published.sha256) <= set(spec.download_patterns()), repo_id  # only files the model loads


def test_revision_choices_read_as_the_user_wrote_them():
    plus = VOICE_MODELS["plus"].repo.repo_id
    chosen = parse_revision_choices(["v2", "google/siglip2-so400m-patch16-384@" + "a" * 40], head_repos=[plus])
    assert chosen.by_repo == {plus: "v2", "google/siglip2-so400m-patch16-384": "a" * 40}
    for bad, message in ((["x y"], "expected ORG/NAME@REVISION"), (["org/name@"], "expected ORG/NAME@REVISION"),
                         (["a/b@1", "a/b@2"], "two revisions for a/b: 1 and 2")):
        with pytest.raises(ValueError, match=message):
            parse_revision_choices(bad, head_repos=[plus])
    # with face and voice heads, a bare revision cannot say which one it is for
    with pytest.raises(ValueError, match="does not say its repository.*write ORG/NAME@v2"):
        parse_revision_choices(["v2"], head_repos=[plus, "laion/Empathic-Insight-Face-Small"])


def test_a_chosen_revision_replaces_the_pin_without_fallback_or_checksums():
    heads, encoder = VoiceEmotionModel.needs("large")
    assert heads.ref.revision == "main" and heads.fallback_revisions == ("refs/pr/3",)
    assert dict(heads.checksums)["model_Contempt_best.pth"].startswith("b41d8620")
    chosen = RevisionChoices({"laion/Empathic-Insight-Voice-Large": "abc", "mkrausio/EmoWhisper-AnS-Small-v0.1": "v1"})
    heads, encoder = VoiceEmotionModel.needs("large", revisions=chosen)
    assert heads.ref.revision == "abc" and heads.fallback_revisions == () and heads.checksums == ()
    assert encoder.ref.revision == "v1"
    face_heads, backbone = FaceEmotionModel.needs("small")
    assert len(face_heads.checksums) == 2 and backbone.ref == registry.SIGLIP2_SO400M


def _voice_large_cache(tmp_path, main_has_heads: bool) -> Path:
    """Voice-Large laid out as its stored pages show it: the heads on refs/pr/3 (owner upload 9bd1876),
    and main with (or without) the same files."""
    from replicas import voice_repo_files, write_hub_repo

    cache = tmp_path / "hub"
    spec = VOICE_MODELS["large"]
    files = voice_repo_files(spec)
    write_hub_repo(cache, RepoRef(spec.repo.repo_id, "refs/pr/3"), {**files, "README.md": b"pr 3\n"})
    main_files = files if main_has_heads else {"README.md": b"card only\n", "config.json": b"{}"}
    write_hub_repo(cache, spec.repo, main_files)
    return cache


def test_voice_large_resolves_the_revision_that_holds_its_heads(tmp_path, voice_hub_cache, cpu_runtime):
    heads_need = VoiceEmotionModel.needs("large")[0]
    cache = _voice_large_cache(tmp_path / "pr-only", main_has_heads=False)
    resolved = resolve_needs([heads_need], WeightSources(cache_dir=cache, offline=True))[heads_need.ref]
    assert resolved.ref.revision == "refs/pr/3"
    assert resolved.commit == (cache / "models--laion--Empathic-Insight-Voice-Large/refs/refs/pr/3").read_text()
    cache = _voice_large_cache(tmp_path / "both", main_has_heads=True)
    resolved = resolve_needs([heads_need], WeightSources(cache_dir=cache, offline=True))[heads_need.ref]
    assert resolved.ref.revision == "main"  # main first where it holds the heads
    # a whole load records the revision the heads came from
    encoder = voice_hub_cache / "models--mkrausio--EmoWhisper-AnS-Small-v0.1"
    cache = _voice_large_cache(tmp_path / "load", main_has_heads=False)
    (cache / encoder.name).symlink_to(encoder, target_is_directory=True)
    model = VoiceEmotionModel.load("large", WeightSources(cache_dir=cache, offline=True), cpu_runtime)
    assert model.info.requested_revision == "refs/pr/3" and model.heads.num_heads == 55
    empty = tmp_path / "main-only"
    from replicas import write_hub_repo

    write_hub_repo(empty / "hub", VOICE_MODELS["large"].repo, {"README.md": b"card only\n"})
    with pytest.raises(MissingWeightsError, match=r"lacks 55 file\(s\).*at refs/pr/3: not in the local hub cache"):
        resolve_needs([heads_need], WeightSources(cache_dir=empty / "hub", offline=True))


def test_published_checksums_are_checked_and_a_changed_file_is_named(tmp_path, hub_cache, monkeypatch):
    (snapshot,) = (hub_cache / "models--laion--Empathic-Insight-Face-Small" / "snapshots").iterdir()
    folder = tmp_path / "face-small"
    shutil.copytree(snapshot, folder, symlinks=False)
    names = ("model_contempt_best.pth", "model_contentment_best.pth")
    replica = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    published = registry.PublishedChecksums(replica, "https://huggingface.co/laion/Empathic-Insight-Face-Small/x",
                                            "05000ef")
    monkeypatch.setitem(PUBLISHED_CHECKSUMS, "laion/Empathic-Insight-Face-Small", published)
    need = FaceEmotionModel.needs("small")[0]
    sources = WeightSources(local_dirs={"laion/Empathic-Insight-Face-Small": folder}, verify_checksums=True)
    assert resolve_needs([need], sources)[need.ref].path == folder
    assert verify_files(folder, replica, "r") == names
    data = bytearray((folder / names[1]).read_bytes())
    data[-1] ^= 1
    (folder / names[1]).write_bytes(bytes(data))
    with pytest.raises(WeightChecksumError) as error:
        resolve_needs([need], sources)
    message = str(error.value)
    assert "\n" not in message and "laion/Empathic-Insight-Face-Small: model_contentment_best.pth has SHA256" in message
    assert replica[names[1]] in message and "https://huggingface.co/laion/Empathic-Insight-Face-Small/x" in message
    # without the check the same folder loads, and another revision is never checked against them
    assert resolve_needs([need], replace(sources, verify_checksums=False))
    other = FaceEmotionModel.needs("small", RevisionChoices({"laion/Empathic-Insight-Face-Small": "v9"}))[0]
    assert resolve_needs([other], sources)[other.ref].path == folder


def test_download_falls_back_to_the_revision_with_the_heads_and_verifies(tmp_path, monkeypatch):
    """``models download`` as it meets the hub, with the hub's answers simulated: main without
    the files, refs/pr/3 with them; then a file whose content differs from its published SHA256."""
    folders = {"main": tmp_path / "main", "refs/pr/3": tmp_path / "pr3"}
    for folder in folders.values():
        folder.mkdir()
    (folders["refs/pr/3"] / "model_a_best.pth").write_bytes(b"head a")
    asked = []

    def fake_download(ref, patterns, sources, local_dir=None):
        asked.append(ref.revision)
        return folders[ref.revision]

    monkeypatch.setattr(hub, "_download", fake_download)
    need = ModelNeed(RepoRef("org/heads", "main"), ("model_a_best.pth",), ("model_a_best.pth",),
                     fallback_revisions=("refs/pr/3",),
                     checksums=(("model_a_best.pth", hashlib.sha256(b"head a").hexdigest()),))
    (fetched,) = download_needs([need], WeightSources(verify_checksums=True))
    assert asked == ["main", "refs/pr/3"] and fetched.ref.revision == "refs/pr/3"
    folders["main"] = None  # a revision the hub refuses (unknown, gated, no network): the next one serves
    monkeypatch.setattr(hub, "_download", lambda ref, *a, **k: folders[ref.revision] or 1 / 0)
    assert download_needs([need], WeightSources(verify_checksums=True))[0].ref.revision == "refs/pr/3"
    wrong = replace(need, checksums=(("model_a_best.pth", "0" * 64),))
    with pytest.raises(WeightChecksumError, match="org/heads: model_a_best.pth has SHA256"):
        download_needs([wrong], WeightSources(verify_checksums=True))
    assert download_needs([wrong], WeightSources(verify_checksums=False))  # --no-verify
    (folders["refs/pr/3"] / "model_a_best.pth").unlink()
    with pytest.raises(MissingWeightsError, match="org/heads: no revision holds the model's files"):
        download_needs([need], WeightSources())


def test_backend_settings_choose_revisions_and_the_check(tmp_path, hub_cache):
    from empathic.labelstudio.service import AnalysisService
    from empathic.labelstudio.settings import BackendSettings, SettingsError

    revisions = "laion/Empathic-Insight-Face-Small@v7, google/x@" + "b" * 40
    settings = BackendSettings.from_env({"MODEL_REVISIONS": revisions, "VERIFY_WEIGHTS": "true",
                                         "VOICE_MODEL_SIZE": "plus"})
    assert settings.revision_choices().by_repo == {"laion/Empathic-Insight-Face-Small": "v7", "google/x": "b" * 40}
    assert settings.weight_sources().verify_checksums and settings.voice_encoder == "auto"
    for bad, message in (({"MODEL_REVISIONS": "v7"}, "MODEL_REVISIONS: .*does not say its repository"),
                         ({"VOICE_MODEL_SIZE": "huge"}, "VOICE_MODEL_SIZE"),
                         ({"VOICE_ENCODER": "whisper"}, "VOICE_ENCODER")):
        with pytest.raises(SettingsError, match=message):
            BackendSettings.from_env(bad)
    service = AnalysisService(settings, cache=None, fetcher=object())
    with pytest.raises(MissingWeightsError, match=r"laion/Empathic-Insight-Face-Small \(revision v7"):
        service.require_models("small", None)  # the chosen revision, not the registry's, is looked for
    AnalysisService(BackendSettings(), cache=None, fetcher=object()).require_models("small", None)  # the replica

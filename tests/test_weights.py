"""Finding weights and reading LAION's neutral statistics."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from empathic.hub import MissingWeightsError, WeightSources, resolve_repos
from empathic.models.face import NeutralStatsError, load_neutral_means
from empathic.registry import FACE_MODELS, RepoRef
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

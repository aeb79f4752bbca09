import os

import pytest
import torch

# test/ros/ holds the launch tests of the installed node: `colcon test` runs them in a built
# workspace (CMakeLists.txt, .ci/ros_tests); the pip-installed suite leaves them out.
collect_ignore = ["ros"]

# Two cores shared by the whole suite: one intra-op thread per test process keeps timings sane.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session", autouse=True)
def _isolated_session_cache(tmp_path_factory):
    """Module fixtures (set up before any test's own fixtures) that build a pipeline with backend
    auto build CPU engines too: they go to a cache of this session, never the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HYDRANET_CACHE_DIR", str(tmp_path_factory.mktemp("session-cache")))
    patch.delenv("HYDRANET_ENGINE_CACHE", raising=False)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real cache."""
    monkeypatch.setenv("HYDRANET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HYDRANET_ENGINE_CACHE", raising=False)

import os

import pytest
import torch

# test/ros/ holds the launch tests of the installed node: `colcon test` runs them in a built
# workspace (CMakeLists.txt, .ci/ros_tests); the pip-installed suite leaves them out.
collect_ignore = ["ros"]

# Two cores shared by the whole suite: one intra-op thread per test process keeps timings sane.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real cache."""
    monkeypatch.setenv("HYDRANET_CACHE_DIR", str(tmp_path / "cache"))

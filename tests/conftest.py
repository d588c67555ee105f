"""Shared test options: ``--device`` picks where the op tests run (cpu by default; cuda on a GPU machine)."""

from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device for the op tests: cpu (default), cuda, cuda:1 ...")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    dev = torch.device(request.config.getoption("--device"))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("--device cuda given but CUDA is not available")
        # matmul-based code loses precision under TF32; the tolerances assume full float32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return dev

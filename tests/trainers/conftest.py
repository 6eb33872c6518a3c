"""Tiny models train faster on one thread, and the test machine is shared: pin torch to one thread
while these tests run (restored afterwards, so other packages' tests are unaffected)."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



@pytest.fixture(scope="module")
def weight_server(tiny_model_dir, tmp_path_factory):
    """`wb serve TINY --allow-weight-updates` in another process (one torch thread) on a free port; it
    loads weights from anywhere under pytest's base temporary directory (every test's tmp_path)."""
    from trainers.generator import local_generator

    with local_generator(tiny_model_dir, tmp_path_factory.getbasetemp(), threads=1) as url:
        yield url

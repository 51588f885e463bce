"""Fixtures shared by several test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def _single_torch_thread() -> Iterator[None]:
    """Run with one intra-op thread, then restore the previous count.

    Tiny convolutions and solver steps are far faster single-threaded on a shared 2-core
    machine, where extra threads only spin against each other and against other jobs.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the duration of a test (use with ``pytestmark = usefixtures``)."""
    yield from _single_torch_thread()


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """One torch thread for a whole test module, including its module-scoped fixtures."""
    yield from _single_torch_thread()

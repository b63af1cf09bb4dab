"""The devices a device-parametrised test runs on: CPU always, CUDA when visible (``gpu`` mark;
tests/conftest.py skips the mark without CUDA)."""

import pytest

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]

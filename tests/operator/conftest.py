"""The operator's emulator tier: the fixtures live in tests/support so the gateway's tests share them."""
from tests.support.fixtures import *  # noqa: F401,F403

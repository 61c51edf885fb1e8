"""Tests of ``test.test_queue`` that cannot apply to plait's queues, each with its reason."""

SKIPS: dict[str, str] = {}

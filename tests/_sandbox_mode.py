"""The sandbox mode the grading tests grade with.

Grading fails closed: with no sandbox it refuses to run student code unless told
``off``.  The tests that check grades (not the sandbox itself: tests/test_sandbox*.py
do that) grade sandboxed wherever the sandbox can start, as CI does, and say ``off``
explicitly on a machine without one.
"""

from __future__ import annotations

from rmteach.grading.sandbox import sandbox_available

SANDBOXED, SANDBOX_WHY = sandbox_available()
MODE = "auto" if SANDBOXED else "off"

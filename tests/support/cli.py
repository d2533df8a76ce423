"""Run the ``lxdctl`` command as a user would, for the integration tests.

The binary is the one next to this interpreter, so tests exercise the venv under test and
not whatever ``lxdctl`` comes first on PATH.  stdin is closed unless a test gives input, so
no command can hang waiting for a prompt.
"""
import os
import subprocess
import sys

LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")


def lxdctl(*args, check=True, timeout=300, env=None, **kwargs):
    """``lxdctl ARGS`` as a ``CompletedProcess`` with text stdout/stderr.

    ``check``: ``True`` asserts exit status 0, a number asserts that status, ``False`` or
    ``None`` asserts nothing (the test looks at ``returncode`` itself).  ``env`` adds to this
    process's environment; other keywords (``input``, ``stdin``) go to ``subprocess.run``.
    """
    kwargs.setdefault("stdin", None if "input" in kwargs else subprocess.DEVNULL)
    proc = subprocess.run([LXDCTL] + [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})), **kwargs)
    expected = 0 if check is True else (None if check is False else check)
    if expected is not None and proc.returncode != expected:
        raise AssertionError("lxdctl %s: rc=%s, expected %s\n%s\n%s" % (
            " ".join(str(arg) for arg in args), proc.returncode, expected, proc.stdout, proc.stderr))
    return proc

"""``import jaxseg`` puts the fast CPU convolution flag in XLA_FLAGS before jax starts."""

import os
import subprocess
import sys

from jaxseg.xla_flags import CPU_CONV_FLAG


def _python(code: str, xla_flags: str | None, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXSEG_FAST_CPU")}
    env.update(extra)
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def test_import_sets_the_flag_and_keeps_the_users_flags():
    code = "import os, jaxseg; print(os.environ['XLA_FLAGS'])"
    out = _python(code, "--xla_force_host_platform_device_count=2")
    assert out.stdout.split() == ["--xla_force_host_platform_device_count=2", CPU_CONV_FLAG]
    assert _python(code, None).stdout.strip() == CPU_CONV_FLAG
    assert "jax started" not in out.stderr


def test_a_users_own_value_of_the_flag_wins():
    code = "import os, jaxseg; print(os.environ['XLA_FLAGS'])"
    mine = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
    assert _python(code, mine).stdout.strip() == mine
    assert _python(code, "--a", JAXSEG_FAST_CPU="0").stdout.strip() == "--a"  # the opt-out


def test_importing_jaxseg_after_jax_started_warns():
    code = "import jax; jax.numpy.ones(1).block_until_ready(); import jaxseg"
    out = _python(code, None)
    assert out.returncode == 0
    assert "jax started before jaxseg was imported" in out.stderr
    quiet = _python("import jax; import jaxseg; jax.numpy.ones(1)", None)
    assert "jax started" not in quiet.stderr  # imported but not started: the flag still counts

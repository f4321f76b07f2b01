"""jaxseg: pretext-to-segmentation transfer for medical image segmentation, in JAX/Flax."""

from jaxseg.xla_flags import set_fast_cpu_flags

set_fast_cpu_flags()  # before jax's backend starts: XLA reads XLA_FLAGS once, at first use

"""``wafer bench``: a serving benchmark of wafer against the peers a user would pick instead.

One concept per module: ``workloads`` (seeded request scripts), ``client`` (lean streaming client),
``runner`` (closed-loop and rate-driven levels), ``stats`` (percentiles, level metrics), ``peers``
(building and installing peers in the bench cache), ``systems`` (starting each system on loopback),
``rawloop`` (the no-server ceiling), ``plots``, ``report`` and ``cli``. See bench/README.md.
"""

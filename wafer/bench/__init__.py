"""``wafer bench``: a serving benchmark of wafer against the peers a user would pick instead.

One concept per module: ``workloads`` (seeded request scripts), ``client`` (the lean streaming client),
``runner`` (closed-loop and rate-driven levels), ``stats`` (percentiles, level metrics), ``peers``
(building and installing peers in the bench cache), ``systems`` (starting each system on loopback),
``rawloop`` (the no-server ceiling), ``plots``, ``report`` (tables, ratios), ``findings`` (what the
numbers say), ``render`` (the docs' rendered blocks) and ``cli``. The focused benchmarks, one per
module: ``serve_vs_raw``, ``prefix_cache``, ``structured``, ``prediction`` and ``step_costs``, on what
``scenario`` gives them. Servers are started through ``wafer.launch``. See bench/README.md.
"""

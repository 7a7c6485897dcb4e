from wafer.bench.rawloop import RawLoop  # noqa: F401  (moved into the package; tests import it from here)

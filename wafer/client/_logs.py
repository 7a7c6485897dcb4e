"""``CEREBRAS_LOG=info|debug`` turns on logging of this client and of httpx, as in the SDK."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("wafer.client")


def setup_logging() -> None:
    level = {"debug": logging.DEBUG, "info": logging.INFO}.get(os.environ.get("CEREBRAS_LOG", ""))
    if level is None:
        return
    logging.basicConfig(format="[%(asctime)s - %(name)s:%(lineno)d - %(levelname)s] %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    logger.setLevel(level)
    logging.getLogger("httpx").setLevel(level)

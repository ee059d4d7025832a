"""The WSGI application for gunicorn: ``gunicorn empathic.labelstudio.wsgi:app``.

Settings come from the environment (see settings.py); ``empathic serve`` starts the same app.
"""

from __future__ import annotations

import logging
import os

from .backend import default_service
from .server import create_app

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(default_service())

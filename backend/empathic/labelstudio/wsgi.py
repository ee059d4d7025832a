"""The WSGI application for gunicorn: ``gunicorn empathic.labelstudio.wsgi:app``.

Settings come from the environment (see settings.py); ``empathic serve`` starts the same app.
"""

from __future__ import annotations

import logging
import os

from .server import create_app
from .service import AnalysisService
from .settings import BackendSettings

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(AnalysisService(BackendSettings.from_env()))

"""ioc-pipeline: the lakehouse behind a provincial Intelligent Operations Center.

Importing the package turns off the telemetry of every library it uses before any of them is
imported: nothing may leave this machine while the pipeline or its tests run.
"""

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

"""Fault injection for the crash tests: `point(name)` kills this very process (SIGKILL) when the
environment variable `IOC_FAULT_AT` equals `name`, and does nothing otherwise.

    IOC_FAULT_AT=publish python -m ioc_pipeline.cli run   # dies inside the warehouse build, as on a power cut

The variable is read at each point (a dictionary lookup), not at import: a process forked from one that
imported the pipeline (the crash tests' fork server) sees its own setting. Points (each a one-line call
where the pipeline is most fragile):

    bronze_read    a delivered file is being read into bronze (dossier export)
    dlt_load       dlt has normalized the load package, the copy into the lake has not happened
    dlt_recorded   dlt has loaded into bronze, Dagster has not recorded the bronze materialization
    silver         a dossier month of silver has been written, the other months not yet
    gold           a gold KPI table has been written, its materialization not recorded
    publish        the new warehouse file is built aside, not yet swapped in
"""

from __future__ import annotations

import os
import signal

ENV = "IOC_FAULT_AT"
POINTS = ("bronze_read", "dlt_load", "dlt_recorded", "silver", "gold", "publish")


def point(name: str) -> None:
    """Die here, at once and without clean-up, when `IOC_FAULT_AT` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

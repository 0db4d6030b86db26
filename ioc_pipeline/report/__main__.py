"""`python -m ioc_pipeline.report` (`make report`): rebuild the IOC report from the current warehouse.

Reads the published warehouse read-only, writes `report/ioc/<snapshot>.html` and `latest.html` into
the lake (as the `report/ioc` asset does, without recording a run), and prints the page's path.
"""

from __future__ import annotations

import argparse
import os
import sys


def report_command() -> int:
    """Build and write the report; print where it is. For `python -m ioc_pipeline.cli report` too."""
    from ioc_pipeline.lake import Lake
    from ioc_pipeline.report import ioc
    from ioc_pipeline.resources import resolved

    warehouse = resolved("warehouse").path
    if not os.path.exists(warehouse):
        print(f"no warehouse at {warehouse}: run `make run` first", file=sys.stderr)
        return 1
    rendered = ioc.build(warehouse)
    written = ioc.write(Lake(resolved("lake").root), rendered)
    base = resolved("report").base_url.strip()
    print(f"IOC report of {rendered.snapshot} ({written.size_bytes / 1e6:.1f} MB, {len(rendered.charts)} charts):")
    print(written.latest_path or written.latest_url)
    if base:
        print(f"{base.rstrip('/')}/ioc/latest.html")
    return 0


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m ioc_pipeline.report", description=__doc__).parse_args(argv)
    sys.exit(report_command())


if __name__ == "__main__":
    main()

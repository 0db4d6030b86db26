"""Pages people read: the IOC report (gold layer, charts, map) and the gate's quality pages.

    warehouse (published, read-only) ──data.load──► charts / page ──► lake/report/ioc/<snapshot>.html, latest.html
    a gated batch's summary ──quality.render_quality_page──► one quality page (the lead's gate writes it)

Every page is ONE self-contained HTML file: scripts and styles inline, no font, tile or CDN request,
and a Content-Security-Policy that forbids the browser to fetch anything, so a page opened from a
USB stick or an e-mail shows the same as from the server. This package's `__init__` imports nothing
heavy: `make dev` imports `report.server` only.
"""

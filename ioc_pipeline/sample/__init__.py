"""Deterministic sample deliveries shaped as the landing-zone contract says (dev and tests only).

`python -m ioc_pipeline.sample --out data/landing` writes the committed sample; production code
never imports this package.
"""

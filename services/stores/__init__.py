"""Loom's own tables, on one SQLAlchemy metadata: workspace, accounts, shop and support, with their demo data."""

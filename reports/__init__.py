"""The report builder: the paper's tables and figures regenerated from the run records.

    python -m reports.build [NAME ...] [--preset P] [--out DIR] [--format md,tex,html]

sources (run records or MLflow) -> tables (views: cells, statuses, provenance) -> grid (the layout
every format shares) -> markdown / latex / html, charts / overlays (figures) -> index (one page).
Reads experiments' specs and plans and tdsclip's records; nothing in tdsclip or experiments
imports this package (experiments.run imports it lazily, to end with the table's report).
"""

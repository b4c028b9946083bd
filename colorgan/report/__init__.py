"""Presentation of finished runs: Table 1, figures, run pages, the paper comparison, the front page, the Reproducibility summary."""

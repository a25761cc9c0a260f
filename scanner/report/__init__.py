"""Report writers: one module per format, each ``write(report, out)``; the report is a plain,
JSON-ready dict built by ``scanner.report.model.build_report``."""

"""Reports: report.json, junit.xml, report.html with its charts and trace views."""

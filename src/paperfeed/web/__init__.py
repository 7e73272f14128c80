"""HTML routes (thin handlers), templates and static assets."""

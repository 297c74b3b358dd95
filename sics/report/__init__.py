"""Presentation: tables (CSV, Markdown, LaTeX), seaborn figures, and the static HTML site. Every
number comes from the analysis layer, every verdict from its claims."""
